//! The web console's pages, rendered on the server as plain HTML. Every piece of text that
//! came from a user (object keys, label names, error texts, message bodies) goes through
//! [`esc`]; the pages load one script, `/console.js`, and the CSP forbids any other.
use std::fmt::Write;

use imgflow_catalog::ports::ImagePage;
use imgflow_messages::{ImageRecord, ImageStatus};
use imgflow_runtime::clock;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::pipeline::{PipelineView, StageView, REFRESH};

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn url_param(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// Which page of the navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`.
    Pipeline,
    /// `/images`.
    Gallery,
    /// `/duplicates`.
    Duplicates,
    /// Neither.
    Other,
}

/// A whole page around `body`.
pub fn layout(title: &str, nav: Nav, body: &str) -> String {
    let link = |href: &str, label: &str, this: Nav| {
        let current = if nav == this {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · imgflow</title>\
         <link rel=\"stylesheet\" href=\"/console.css\">\
         <script src=\"/console.js\" defer></script></head>\
         <body><header><a class=\"brand\" href=\"/\">imgflow</a><nav>{pipeline}{gallery}{duplicates}\
         <a href=\"/images#upload\">Upload</a></nav></header><main>{body}</main></body></html>",
        title = esc(title),
        pipeline = link("/", "Pipeline", Nav::Pipeline),
        gallery = link("/images", "Gallery", Nav::Gallery),
        duplicates = link("/duplicates", "Duplicates", Nav::Duplicates),
    )
}

/// The Pipeline page: the stages as a graph with depths and throughput, refreshed by the
/// script from `/api/pipeline`.
pub fn pipeline_page(view: &PipelineView) -> String {
    let mut body = format!(
        "<h1>Pipeline</h1><p class=\"hint\">Refreshed every {} s. Counts are SQS's approximate \
         numbers; images/min is the average over the last five minutes.</p>\
         <div class=\"graph\" id=\"pipeline\" data-refresh-ms=\"{}\">\
         <div class=\"node source\"><h2>S3</h2><p><code>{}</code></p><p>object created →</p></div>",
        REFRESH.as_secs(),
        REFRESH.as_millis(),
        esc(&view.source)
    );
    // Ingest, then its two branches side by side: label → store, and thumbnail.
    let lane = |stages: &[&StageView]| -> String {
        stages
            .iter()
            .map(|s| {
                format!(
                    "<div class=\"arrow\" aria-hidden=\"true\">→</div>{}",
                    stage_node(s)
                )
            })
            .collect()
    };
    let (branch, main): (Vec<&StageView>, Vec<&StageView>) =
        view.stages.iter().partition(|s| s.stage == "thumbnail");
    let (first, labels) = main.split_at(main.len().min(1));
    body.push_str(&lane(first));
    let _ = write!(
        body,
        "<div class=\"fork\"><div class=\"lane\">{}</div><div class=\"lane\">{}</div></div>",
        lane(labels),
        lane(&branch)
    );
    body.push_str(
        "<div class=\"arrow\" aria-hidden=\"true\">→</div>\
         <div class=\"node source\"><h2>DynamoDB</h2><p>labels, <a href=\"/images\">gallery</a></p></div></div>",
    );
    layout("Pipeline", Nav::Pipeline, &body)
}

/// One stage's box on the Pipeline page.
fn stage_node(stage: &StageView) -> String {
    let name = esc(&stage.stage);
    let dlq_class = if stage.dead_lettered > 0 {
        " has-dlq"
    } else {
        ""
    };
    let max = stage.per_minute.iter().copied().max().unwrap_or(0).max(1);
    let bars: String = stage
        .per_minute
        .iter()
        .map(|n| {
            format!(
                "<span class=\"bar\" style=\"height:{}%\" title=\"{n}\"></span>",
                n * 100 / max
            )
        })
        .collect();
    format!(
        "<section class=\"node stage{dlq_class}\" data-stage=\"{name}\"><h2>{name}</h2>\
         <dl><dt>waiting</dt><dd data-field=\"visible\">{}</dd>\
         <dt>in flight</dt><dd data-field=\"in_flight\">{}</dd>\
         <dt>dead letters</dt><dd><a class=\"dlq\" href=\"/dlq/{name}\" data-field=\"dead_lettered\">{}</a></dd>\
         <dt>images/min</dt><dd data-field=\"rate_per_minute\">{:.1}</dd>\
         <dt>last 10 min</dt><dd data-field=\"recent_total\">{}</dd>\
         <dt>ETA</dt><dd data-field=\"eta\">{}</dd></dl>\
         <div class=\"spark\" data-field=\"per_minute\" aria-label=\"completed per minute\">{bars}</div>\
         </section>",
        stage.visible,
        stage.in_flight,
        stage.dead_lettered,
        stage.rate_per_minute,
        stage.recent_total,
        esc(&stage.eta)
    )
}

/// The pipeline unreachable (SQS or DynamoDB failing): the page still renders, saying so.
pub fn pipeline_unavailable(reason: &str) -> String {
    layout(
        "Pipeline",
        Nav::Pipeline,
        &format!(
            "<h1>Pipeline</h1><p class=\"error\">The queues could not be read: {}</p>",
            esc(reason)
        ),
    )
}

/// What the gallery was asked for.
#[derive(Debug, Clone, Default)]
pub struct GalleryFilter {
    /// Status filter.
    pub status: Option<ImageStatus>,
    /// Label filter.
    pub label: Option<String>,
    /// Whether this is a later page.
    pub paged: bool,
}

impl GalleryFilter {
    fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.status {
            parts.push(format!("status={s}"));
        }
        if let Some(l) = &self.label {
            parts.push(format!("label={}", url_param(l)));
        }
        parts.join("&amp;")
    }
}

fn status_badge(status: ImageStatus) -> String {
    format!("<span class=\"status status-{status}\" data-status=\"{status}\">{status}</span>")
}

/// The Gallery page: filters, the upload drop zone, and one page of images.
pub fn gallery_page(page: &ImagePage, filter: &GalleryFilter) -> String {
    let option = |value: &str| {
        let selected = if filter.status.map(|s| s.as_str()) == Some(value) {
            " selected"
        } else {
            ""
        };
        format!("<option value=\"{value}\"{selected}>{value}</option>")
    };
    let statuses: String = ["labeled", "accepted", "rejected", "missing"]
        .iter()
        .map(|s| option(s))
        .collect();
    let mut body = format!(
        "<h1>Gallery</h1>\
         <form class=\"filters\" method=\"get\" action=\"/images\" role=\"search\">\
         <label>Label <input type=\"search\" name=\"label\" value=\"{label}\" placeholder=\"Cat, Animal…\"></label>\
         <label>Status <select name=\"status\"><option value=\"\">any</option>{statuses}</select></label>\
         <button type=\"submit\">Filter</button> <a href=\"/images\">clear</a></form>\
         <section id=\"upload\" class=\"drop\" tabindex=\"0\">\
         <p><strong>Drop images here</strong> or <label class=\"pick\">choose files\
         <input id=\"files\" type=\"file\" accept=\"image/png,image/jpeg\" multiple></label></p>\
         <ul id=\"uploads\"></ul></section>",
        label = esc(filter.label.as_deref().unwrap_or("")),
    );
    if let Some(label) = &filter.label {
        let _ = write!(
            body,
            "<p class=\"hint\">Images labeled <strong>{}</strong>, or with a label under it, \
             in any case.</p>",
            esc(label)
        );
    }
    let live = if filter.paged {
        ""
    } else {
        " data-live=\"3000\""
    };
    let _ = write!(body, "<div id=\"grid\" class=\"grid\"{live}>");
    if page.images.is_empty() {
        body.push_str("<p class=\"empty\">No images match.</p>");
    }
    for image in &page.images {
        body.push_str(&card(image));
    }
    body.push_str("</div>");
    if let Some(next) = &page.next {
        let query = filter.query();
        let sep = if query.is_empty() { "" } else { "&amp;" };
        let _ = write!(
            body,
            "<p class=\"pager\"><a rel=\"next\" href=\"/images?{query}{sep}cursor={}\">Older →</a></p>",
            url_param(next)
        );
    }
    layout("Gallery", Nav::Gallery, &body)
}

fn card(image: &ImageRecord) -> String {
    let id = esc(&image.id);
    let labels: String = image
        .top_labels(3)
        .iter()
        .map(|l| format!("<span class=\"label\">{}</span>", esc(l)))
        .collect();
    format!(
        "<a class=\"card\" href=\"/images/{id}\" data-id=\"{id}\">\
         <img src=\"/images/{id}/thumbnail\" alt=\"\" loading=\"lazy\" width=\"240\" height=\"180\">\
         <span class=\"key\">{key}</span>{badge}<span class=\"labels\">{labels}</span></a>",
        key = esc(short_key(&image.key)),
        badge = status_badge(image.status),
    )
}

/// The key without its first folder (`incoming/`, or the `IMGFLOW_INCOMING_PREFIX` folder),
/// which every upload shares.
fn short_key(key: &str) -> &str {
    key.split_once('/')
        .map(|(_, rest)| rest)
        .filter(|k| !k.is_empty())
        .unwrap_or(key)
}

/// The Image page: the photo with every instance's box, labels, reason and timeline.
pub fn image_page(image: &ImageRecord) -> String {
    image_page_with(image, "")
}

/// [`image_page`] with `extra` (trusted HTML: its near-duplicates) after the timeline.
pub fn image_page_with(image: &ImageRecord, extra: &str) -> String {
    let id = esc(&image.id);
    let mut body = format!(
        "<h1 class=\"key\">{}</h1><p>{}{}</p>",
        esc(&image.key),
        status_badge(image.status),
        image
            .reason
            .as_deref()
            .map(|r| format!(" <span class=\"reason\">{}</span>", esc(r)))
            .unwrap_or_default(),
    );
    let labels = image.labels.as_deref().unwrap_or_default();
    let mut boxes = String::new();
    for label in labels {
        for instance in &label.instances {
            let b = &instance.bounding_box;
            let _ = write!(
                boxes,
                "<div class=\"box\" style=\"left:{:.3}%;top:{:.3}%;width:{:.3}%;height:{:.3}%\" \
                 data-label=\"{name}\"><span>{name} {:.1}%</span></div>",
                b.left * 100.0,
                b.top * 100.0,
                b.width * 100.0,
                b.height * 100.0,
                instance.confidence,
                name = esc(&label.name),
            );
        }
    }
    // Labeled, but the thumbnail branch has yet to finish: worth a reload for a while (items
    // from before the thumbnail stage never complete, so not for ever).
    let completing = image.status == ImageStatus::Labeled
        && image.completed_at.is_none()
        && image
            .stored_at
            .as_deref()
            .and_then(|stored| clock::seconds_between(stored, &clock::now_rfc3339()))
            .is_some_and(|age| age < 60.0);
    if !image.status.is_final() || completing {
        // Still on its way: the script reloads the page until it is final.
        body.push_str(
            "<p class=\"hint\" id=\"pending\" data-reload-ms=\"2000\">In the pipeline: this page \
             refreshes until the image is labeled and complete.</p>",
        );
    }
    let viewable = matches!(image.status, ImageStatus::Accepted | ImageStatus::Labeled);
    if viewable {
        let _ = write!(
            body,
            "<figure class=\"photo\"><img src=\"/images/{id}/object\" alt=\"{}\">{boxes}</figure>",
            esc(&image.key)
        );
    }
    body.push_str("<div class=\"facts\">");
    if !labels.is_empty() {
        body.push_str(
            "<section><h2>Labels</h2><table class=\"labels\"><thead><tr><th>Label</th>\
             <th>Confidence</th><th>Parents</th><th>Boxes</th></tr></thead><tbody>",
        );
        let mut sorted: Vec<_> = labels.iter().collect();
        sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        for label in sorted {
            let parents: Vec<String> = label
                .parents
                .iter()
                .map(|p| {
                    format!(
                        "<a href=\"/images?label={}\">{}</a>",
                        url_param(&p.name),
                        esc(&p.name)
                    )
                })
                .collect();
            let _ = write!(
                body,
                "<tr><td><a href=\"/images?label={}\">{}</a></td><td>{:.1}%</td><td>{}</td><td>{}</td></tr>",
                url_param(&label.name),
                esc(&label.name),
                label.confidence,
                parents.join(", "),
                label.instances.len()
            );
        }
        body.push_str("</tbody></table></section>");
    }
    body.push_str(&timeline(image));
    body.push_str(extra);
    let _ = write!(
        body,
        "<section><h2>Object</h2><dl class=\"meta\">\
         <dt>bucket</dt><dd>{}</dd><dt>key</dt><dd>{}</dd><dt>size</dt><dd>{}</dd>\
         <dt>dimensions</dt><dd>{}</dd><dt>detector</dt><dd>{}</dd>{}<dt>id</dt><dd><code>{id}</code></dd>\
         </dl><p><a href=\"/images/{id}?format=json\">JSON</a></p></section></div>",
        esc(&image.bucket),
        esc(&image.key),
        image.size.map(|s| format!("{s} bytes")).unwrap_or_default(),
        match (image.width, image.height) {
            (Some(w), Some(h)) => format!("{w} × {h}"),
            _ => String::new(),
        },
        esc(&format!(
            "{} {}",
            image.detector.as_deref().unwrap_or(""),
            image.label_model_version.as_deref().unwrap_or("")
        )),
        // Labels copied from the original of the same bytes: no detector call was paid.
        image
            .duplicate_of
            .as_deref()
            .map(|original| format!(
                "<dt>exact copy of</dt><dd><a class=\"duplicate-of\" href=\"/images/{o}\">\
                 <code>{o}</code></a> (labels copied; no detector call)</dd>",
                o = esc(original)
            ))
            .unwrap_or_default(),
    );
    layout(short_key(&image.key), Nav::Other, &body)
}

/// received → accepted → two branches side by side (labeled → stored, and the thumbnail) →
/// completed, each step with the time since the step it followed.
fn timeline(image: &ImageRecord) -> String {
    let mut out = String::from("<section><h2>Timeline</h2><ol class=\"timeline\">");
    let received = Some(&image.received_at);
    out.push_str(&step("received", received, None, None));
    out.push_str(&step(
        "accepted",
        image.accepted_at.as_ref(),
        received,
        None,
    ));
    let accepted = image.accepted_at.as_ref();
    let made_at = image.thumbnail.as_ref().and_then(|t| t.made_at.as_ref());
    out.push_str("<li class=\"branches\"><div class=\"branch\" data-branch=\"labels\"><ol>");
    out.push_str(&step("labeled", image.labeled_at.as_ref(), accepted, None));
    out.push_str(&step(
        "stored",
        image.stored_at.as_ref(),
        image.labeled_at.as_ref(),
        None,
    ));
    out.push_str("</ol></div><div class=\"branch\" data-branch=\"thumbnail\"><ol>");
    out.push_str(&step(
        "thumbnail",
        made_at,
        accepted,
        image.thumbnail_error.as_deref(),
    ));
    out.push_str("</ol></div></li>");
    // The join waited for whichever branch finished last.
    let last_branch = [image.stored_at.as_ref(), made_at]
        .into_iter()
        .flatten()
        .max();
    out.push_str(&step(
        "completed",
        image.completed_at.as_ref(),
        last_branch,
        None,
    ));
    out.push_str("</ol>");
    let end = image.completed_at.as_deref().or(image.stored_at.as_deref());
    if let Some(total) = end.and_then(|end| clock::seconds_between(&image.received_at, end)) {
        let _ = write!(out, "<p>End to end: {}</p>", human_seconds(total));
    }
    out.push_str("</section>");
    out
}

/// One timeline step: done at `at` (with the time since `after`), failed with `error`, or
/// still pending.
fn step(name: &str, at: Option<&String>, after: Option<&String>, error: Option<&str>) -> String {
    match (at, error) {
        (Some(at), _) => {
            let took = after
                .and_then(|p| clock::seconds_between(p, at))
                .map(|s| format!(" <span class=\"took\">+{}</span>", human_seconds(s)))
                .unwrap_or_default();
            format!(
                "<li class=\"done\" data-step=\"{name}\"><strong>{name}</strong> \
                 <time datetime=\"{t}\">{t}</time>{took}</li>",
                t = esc(at)
            )
        }
        (None, Some(error)) => format!(
            "<li class=\"failed\" data-step=\"{name}\"><strong>{name}</strong> none: {}</li>",
            esc(error)
        ),
        (None, None) => {
            format!("<li class=\"pending\" data-step=\"{name}\"><strong>{name}</strong> —</li>")
        }
    }
}

fn human_seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// An error page for browsers.
pub fn error_page(title: &str, message: &str) -> String {
    layout(
        title,
        Nav::Other,
        &format!(
            "<h1>{}</h1><p class=\"error\">{}</p>",
            esc(title),
            esc(message)
        ),
    )
}

/// A grey placeholder for images that cannot be shown (rejected, missing, undecodable).
pub fn placeholder_svg(text: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"240\" height=\"180\" viewBox=\"0 0 240 180\">\
         <rect width=\"240\" height=\"180\" fill=\"#e5e7eb\"/>\
         <text x=\"120\" y=\"95\" font-family=\"sans-serif\" font-size=\"16\" fill=\"#6b7280\" \
         text-anchor=\"middle\">{}</text></svg>",
        esc(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgflow_messages::{BoundingBox, Instance, Label, NamedRef};

    fn record(key: &str) -> ImageRecord {
        let mut r = ImageRecord::new(
            "id1".into(),
            "bucket".into(),
            key.into(),
            "etag".into(),
            "2026-11-27T05:00:00.000000Z".into(),
            ImageStatus::Labeled,
        );
        r.accepted_at = Some("2026-11-27T05:00:00.250000Z".into());
        r.labeled_at = Some("2026-11-27T05:00:01.250000Z".into());
        r.stored_at = Some("2026-11-27T05:00:01.300000Z".into());
        r.labels = Some(vec![Label {
            name: "<b>Cat</b>".into(),
            confidence: 97.5,
            instances: vec![Instance {
                bounding_box: BoundingBox {
                    width: 0.5,
                    height: 0.25,
                    left: 0.1,
                    top: 0.2,
                },
                confidence: 96.0,
            }],
            parents: vec![NamedRef::new("Animal")],
            categories: vec![],
        }]);
        r
    }

    #[test]
    fn user_text_is_escaped_everywhere() {
        let evil = "incoming/<script>alert(1)</script>\"'.png";
        let image = record(evil);
        let page = ImagePage {
            images: vec![image.clone()],
            next: None,
        };
        for html in [
            image_page(&image),
            gallery_page(
                &page,
                &GalleryFilter {
                    label: Some("<script>".into()),
                    ..Default::default()
                },
            ),
        ] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("<b>Cat"), "{html}");
            assert!(html.contains("&lt;script&gt;"));
        }
    }

    #[test]
    fn the_image_page_draws_each_box_and_times_each_stage() {
        let html = image_page(&record("incoming/cat.png"));
        assert!(html.contains("left:10.000%;top:20.000%;width:50.000%;height:25.000%"));
        assert!(html.contains("+250 ms"), "received → accepted");
        assert!(html.contains("+1.00 s"), "accepted → labeled");
        assert!(html.contains("+50 ms"), "labeled → stored");
        assert!(html.contains("End to end: 1.30 s"));
        assert!(html.contains("href=\"/images?label=Animal\""));
    }

    #[test]
    fn an_exact_copy_links_its_original_and_an_original_says_nothing() {
        let mut image = record("incoming/cat-again.png");
        assert!(!image_page(&image).contains("exact copy of"));
        image.duplicate_of = Some("orig<1>".into());
        let html = image_page(&image);
        assert!(
            html.contains("href=\"/images/orig&lt;1&gt;\"><code>orig&lt;1&gt;</code></a> (labels copied; no detector call)"),
            "{html}"
        );
    }

    #[test]
    fn the_timeline_shows_both_branches_side_by_side_and_the_completion() {
        let mut image = record("incoming/cat.png");
        let html = image_page(&image);
        assert!(html.contains("data-step=\"thumbnail\"><strong>thumbnail</strong> —"));
        assert!(html.contains("class=\"pending\" data-step=\"completed\""));
        image.thumbnail = Some(imgflow_messages::Thumbnail {
            key: "thumbnails/id1.jpg".into(),
            width: 320,
            height: 240,
            made_at: Some("2026-11-27T05:00:00.400000Z".into()),
            perceptual_hash: None,
        });
        image.completed_at = Some("2026-11-27T05:00:01.350000Z".into());
        let html = image_page(&image);
        let labels = html.find("data-branch=\"labels\"").unwrap();
        let thumbnail = html.find("data-branch=\"thumbnail\"").unwrap();
        let completed = html.find("data-step=\"completed\"").unwrap();
        assert!(labels < thumbnail && thumbnail < completed, "{html}");
        assert_eq!(html.matches("class=\"done\"").count(), 6);
        assert!(html.contains("+150 ms"), "accepted → thumbnail");
        assert!(html.contains("End to end: 1.35 s"), "to the completion");

        image.thumbnail = None;
        image.thumbnail_error = Some("cannot decode: <corrupt>".into());
        let html = image_page(&image);
        assert!(html.contains("class=\"failed\" data-step=\"thumbnail\""));
        assert!(html.contains("none: cannot decode: &lt;corrupt&gt;"));
    }

    #[test]
    fn filters_survive_into_the_next_page_link() {
        let page = ImagePage {
            images: vec![],
            next: Some("abc=".into()),
        };
        let filter = GalleryFilter {
            status: Some(ImageStatus::Labeled),
            label: Some("hot dog".into()),
            paged: false,
        };
        let html = gallery_page(&page, &filter);
        assert!(html.contains("/images?status=labeled&amp;label=hot%20dog&amp;cursor=abc%3D"));
    }
}
