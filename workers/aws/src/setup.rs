//! What every binary checks before its first call: an endpoint it can use, a region, and
//! credentials. Each is refused in one line that names the cause and the fix, told apart by
//! the SDK's own error kinds (not by matching its messages), so that no one reads a dispatch
//! failure's debug dump and then "is it running?" about an emulator that is running.
use aws_config::SdkConfig;
use aws_credential_types::provider::{error::CredentialsError, ProvideCredentials};

/// A setting that keeps every AWS call from working.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `AWS_ENDPOINT_URL=localhost:4566`: the SDK needs the scheme.
    #[error(
        "{name}={value} has no scheme: write http://{value} (a local emulator) or https://{value}"
    )]
    EndpointWithoutScheme {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
    /// Another scheme, or no host.
    #[error("{name}={value} is not an http:// or https:// URL with a host")]
    EndpointNotHttp {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
    /// No region anywhere in the chain.
    #[error(
        "no AWS region set: set AWS_REGION (or a region in your AWS profile), for example \
         us-east-1{emulator}"
    )]
    NoRegion {
        /// What to do with an emulator, when one is configured.
        emulator: &'static str,
    },
    /// No provider in the chain had credentials (the last one tried, off AWS usually the
    /// instance metadata, says why in `last`).
    #[error(
        "no AWS credentials found (none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, \
         SSO, or a container or instance role){emulator}{last}"
    )]
    NoCredentials {
        /// What to do with an emulator, when one is configured.
        emulator: &'static str,
        /// `; the last source tried said: …`, or nothing.
        last: String,
    },
    /// A provider that should have answered did not, in time.
    #[error("loading AWS credentials timed out ({0}): is the instance or container credential endpoint reachable?")]
    CredentialsTimedOut(String),
    /// A profile or provider that is configured wrongly, or failed.
    #[error("AWS credentials could not be loaded: {0}")]
    Credentials(String),
}

const EMULATOR_REGION: &str = "; with the emulator any region works";
const EMULATOR_CREDENTIALS: &str =
    "; with the emulator any pair works: export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test";

/// Checks every `AWS_ENDPOINT_URL*` variable before the SDK reads it.
pub fn check_endpoints(vars: impl Iterator<Item = (String, String)>) -> Result<(), SetupError> {
    for (name, value) in vars.filter(|(name, _)| name.starts_with("AWS_ENDPOINT_URL")) {
        let Some((scheme, rest)) = value.split_once("://") else {
            return Err(SetupError::EndpointWithoutScheme { name, value });
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if !matches!(scheme, "http" | "https") || host.is_empty() || value.contains(' ') {
            return Err(SetupError::EndpointNotHttp { name, value });
        }
    }
    Ok(())
}

/// Checks a loaded configuration: a region, and credentials its chain can provide (one
/// resolution, at start: a worker that cannot sign must say so now, not at its first poll).
pub async fn check_config(config: &SdkConfig) -> Result<(), SetupError> {
    let emulated = config.endpoint_url().is_some();
    if config.region().is_none() {
        return Err(SetupError::NoRegion {
            emulator: if emulated { EMULATOR_REGION } else { "" },
        });
    }
    let Some(provider) = config.credentials_provider() else {
        return Err(SetupError::NoCredentials {
            emulator: if emulated { EMULATOR_CREDENTIALS } else { "" },
            last: String::new(),
        });
    };
    // A source that is only slow to come up (a pod identity agent, a sidecar, STS under load)
    // gets a few tries; none of them may hold the start longer than CREDENTIALS_TIMEOUT.
    let mut last = None;
    for attempt in 0..CREDENTIALS_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
        }
        tracing::debug!(attempt, "checking the AWS credentials");
        match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
            Ok(Ok(_)) => return Ok(()),
            // Nothing configured, or configured wrongly: no wait will change that.
            Ok(Err(error @ CredentialsError::CredentialsNotLoaded(_)))
            | Ok(Err(error @ CredentialsError::InvalidConfiguration(_))) => {
                return Err(credentials_error(error, emulated))
            }
            Ok(Err(error)) => last = Some(credentials_error(error, emulated)),
            Err(_) => {
                last = Some(SetupError::CredentialsTimedOut(format!(
                    "{} s",
                    CREDENTIALS_TIMEOUT.as_secs()
                )))
            }
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Tries at loading credentials at start, 2 s then 4 s apart.
const CREDENTIALS_ATTEMPTS: u32 = 3;
/// The longest one try may take (the SDK's own calls may wait up to a minute).
const CREDENTIALS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn credentials_error(error: CredentialsError, emulated: bool) -> SetupError {
    let emulator = if emulated { EMULATOR_CREDENTIALS } else { "" };
    match error {
        CredentialsError::CredentialsNotLoaded(_) => SetupError::NoCredentials {
            emulator,
            last: format!(" ({})", words(&error)),
        },
        // A source that was tried and failed: off AWS the instance metadata service (what the
        // chain reports when nothing else was configured), or a configured role, web identity
        // or SSO session; its reason says which.
        CredentialsError::ProviderError(_) => SetupError::NoCredentials {
            emulator,
            last: format!("; the last source tried failed: {}", words(&error)),
        },
        CredentialsError::ProviderTimedOut(timeout) => {
            SetupError::CredentialsTimedOut(format!("{:?}", timeout.timeout_duration()))
        }
        other => SetupError::Credentials(words(&other)),
    }
}

/// An error's messages down its source chain (what `DisplayErrorContext` shows before its
/// debug dump), at most 240 characters.
fn words(error: &(dyn std::error::Error + 'static)) -> String {
    let text = crate::causes(error);
    match text.char_indices().nth(240) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn an_endpoint_without_a_scheme_is_named_with_the_fix() {
        let error = check_endpoints(vars(&[("AWS_ENDPOINT_URL", "localhost:4601")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "AWS_ENDPOINT_URL=localhost:4601 has no scheme: write http://localhost:4601 (a local \
             emulator) or https://localhost:4601"
        );
        let error =
            check_endpoints(vars(&[("AWS_ENDPOINT_URL_S3", "ftp://127.0.0.1:1")])).unwrap_err();
        assert!(error.to_string().contains("AWS_ENDPOINT_URL_S3"), "{error}");
        assert!(check_endpoints(vars(&[("AWS_ENDPOINT_URL", "http://")])).is_err());
        check_endpoints(vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_S3", "https://s3.example.com/base"),
            ("AWS_REGION", "localhost"),
        ]))
        .unwrap();
    }

    #[test]
    fn credentials_are_told_apart_by_kind() {
        let missing = credentials_error(CredentialsError::not_loaded("no env vars"), true);
        let imds = credentials_error(
            CredentialsError::provider_error("failed to load IMDS session token"),
            true,
        );
        assert!(matches!(imds, SetupError::NoCredentials { .. }));
        assert!(imds.to_string().contains("any pair works"), "{imds}");
        assert!(
            imds.to_string().ends_with(
                "failed: an error occurred while loading credentials: failed to load IMDS \
                 session token"
            ),
            "{imds}"
        );
        assert!(matches!(missing, SetupError::NoCredentials { .. }));
        assert!(missing.to_string().contains("any pair works"), "{missing}");
        let real = credentials_error(CredentialsError::not_loaded("no env vars"), false);
        assert!(!real.to_string().contains("emulator"), "{real}");
        let broken = credentials_error(
            CredentialsError::invalid_configuration("profile loops"),
            false,
        );
        assert!(broken.to_string().contains("profile loops"), "{broken}");
        let slow = credentials_error(
            CredentialsError::provider_timed_out(std::time::Duration::from_secs(5)),
            false,
        );
        assert!(slow.to_string().contains("timed out (5s)"), "{slow}");
    }
}
