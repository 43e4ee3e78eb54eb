//! Requests to a provider's token endpoint (RFC 6749 §4 and §6, RFC 7523): the grant's
//! parameters, the client authentication, and the reading of the answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_core::client::GrantType;
use gatehouse_core::keys::SigningKey;
use gatehouse_core::outbound::{ClientAuthMethod, OAuthProvider, ObtainedToken, OutboundRegistry};
use gatehouse_core::secret::{self, Secret};
use serde::Deserialize;
use url::Url;

use super::{OutboundError, Target, send_with_retries};
use crate::fetch::{FetchError, Fetcher, check_url};

/// Client assertions and JWT bearer grants are valid this long: enough for one exchange.
const ASSERTION_LIFETIME: i64 = 60;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The grant Gatehouse presents at a provider's token endpoint: the one the provider record
/// names, or a refresh or a code redemption.
pub(crate) enum ProviderGrant<'a> {
    /// The provider record's own grant (client credentials, password, JWT bearer).
    Configured,
    Refresh(&'a Secret),
    Code {
        code: &'a str,
        redirect_uri: &'a str,
        code_verifier: &'a str,
    },
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
}

/// An error response (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// Asks the provider for a token for `owner`.
pub(crate) async fn request_token(
    registry: &OutboundRegistry,
    fetcher: &Fetcher,
    target: Target<'_>,
    owner: &str,
    grant: ProviderGrant<'_>,
) -> Result<ObtainedToken, OutboundError> {
    let provider = target.provider;
    let credentials = registry.open_credentials(provider)?;
    let now = registry.clock().now();
    let mut form: Vec<(&str, String)> = Vec::new();
    match grant {
        ProviderGrant::Configured => match provider.grant {
            GrantType::ClientCredentials => {
                form.push(("grant_type", "client_credentials".into()));
            }
            GrantType::Password => {
                form.push(("grant_type", "password".into()));
                form.push(("username", provider.username.clone().unwrap_or_default()));
                let password = credentials.password.as_ref().map(Secret::expose);
                form.push(("password", password.unwrap_or_default().to_owned()));
            }
            GrantType::JwtBearer => {
                form.push(("grant_type", JWT_BEARER.into()));
                let subject = provider.username.clone().unwrap_or_default();
                form.push(("assertion", assertion(registry, target, &subject, now)?));
            }
            _ => return Err(OutboundError::ConsentNeeded(target.profile.name.clone())),
        },
        ProviderGrant::Refresh(refresh_token) => {
            form.push(("grant_type", "refresh_token".into()));
            form.push(("refresh_token", refresh_token.expose().to_owned()));
        }
        ProviderGrant::Code {
            code,
            redirect_uri,
            code_verifier,
        } => {
            form.push(("grant_type", "authorization_code".into()));
            form.push(("code", code.to_owned()));
            form.push(("redirect_uri", redirect_uri.to_owned()));
            form.push(("code_verifier", code_verifier.to_owned()));
        }
    }
    let asks_scope = !matches!(grant, ProviderGrant::Code { .. });
    if asks_scope && !target.profile.scopes.is_empty() {
        form.push(("scope", target.profile.scopes.join(" ")));
    }
    if let Some(audience) = &provider.audience {
        form.push(("audience", audience.clone()));
    }
    if let Some(resource) = &provider.resource {
        form.push(("resource", resource.clone()));
    }
    let mut basic = None;
    match provider.auth_method {
        ClientAuthMethod::ClientSecretBasic => {
            let secret = credentials.client_secret.as_ref().map(Secret::expose);
            basic = Some(basic_credentials(
                &provider.client_id,
                secret.unwrap_or_default(),
            ));
        }
        ClientAuthMethod::ClientSecretPost => {
            form.push(("client_id", provider.client_id.clone()));
            let secret = credentials.client_secret.as_ref().map(Secret::expose);
            form.push(("client_secret", secret.unwrap_or_default().to_owned()));
        }
        ClientAuthMethod::PrivateKeyJwt => {
            form.push(("client_id", provider.client_id.clone()));
            form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.into()));
            let client_assertion = assertion(registry, target, &provider.client_id, now)?;
            form.push(("client_assertion", client_assertion));
        }
    }
    let url = Url::parse(&provider.token_url)
        .map_err(|_| OutboundError::Provider(FetchError::Insecure(provider.token_url.clone())))?;
    check_url(&url).map_err(OutboundError::Provider)?;
    let policy = target.policy;
    let response = send_with_retries(policy, || {
        let request = fetcher
            .http()
            .post(url.clone())
            .timeout(policy.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        match &basic {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value.expose()),
            None => request,
        }
    })
    .await
    .map_err(OutboundError::Provider)?;
    let status = response.status();
    let body = fetcher
        .read_body(response)
        .await
        .map_err(OutboundError::Provider)?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => OutboundError::Refused {
                error: e.error,
                description: e.error_description,
            },
            Err(_) => OutboundError::Provider(FetchError::Status(status.as_u16())),
        });
    }
    let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        OutboundError::Provider(FetchError::Invalid(format!("not a token response: {e}")))
    })?;
    if parsed.access_token.is_empty() {
        return Err(OutboundError::Provider(FetchError::Invalid(
            "the access_token is empty".into(),
        )));
    }
    // Gatehouse attaches tokens as bearer tokens; any other type would be misused.
    if let Some(kind) = &parsed.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(OutboundError::Provider(FetchError::Invalid(format!(
            "token_type {kind:?} is not Bearer"
        ))));
    }
    let expires_in = match &parsed.expires_in {
        None => None,
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    // RFC 6749 §6: without a new refresh token, the one presented stays valid.
    let kept_refresh = match grant {
        ProviderGrant::Refresh(previous) => Some(previous.clone()),
        _ => None,
    };
    Ok(ObtainedToken {
        profile: target.profile.name.clone(),
        owner: owner.to_owned(),
        access_token: Secret::new(parsed.access_token),
        refresh_token: parsed.refresh_token.map(Secret::new).or(kept_refresh),
        obtained_at: now,
        expires_at: expires_in.map(|seconds| now + seconds.max(0)),
    })
}

/// RFC 6749 §2.3.1: both parts are form-encoded before they are joined and base64-encoded.
fn basic_credentials(client_id: &str, secret: &str) -> Secret {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    Secret::new(format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    ))
}

/// A JWT for RFC 7523: a client assertion (`subject` = the client) or an authorization grant
/// (`subject` = the user), addressed to the token endpoint.
fn assertion(
    registry: &OutboundRegistry,
    target: Target<'_>,
    subject: &str,
    now: i64,
) -> Result<String, OutboundError> {
    let key = registry.assertion_key(target.provider)?;
    Ok(sign_assertion(&key, target.provider, subject, now)?)
}

fn sign_assertion(
    key: &SigningKey,
    provider: &OAuthProvider,
    subject: &str,
    now: i64,
) -> Result<String, gatehouse_core::Error> {
    // The provider's issuer is the audience RFC 7523bis asks for (and the one a Gatehouse
    // provider requires of client assertions); the token endpoint serves a provider recorded
    // without one.
    let audience = provider.issuer.as_ref().unwrap_or(&provider.token_url);
    let claims = serde_json::json!({
        "iss": provider.client_id,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": secret::generate(),
    });
    key.sign_jws("JWT", &claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let value = basic_credentials("a:b", "p@ss word");
        let encoded = value.expose().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "a%3Ab:p%40ss+word");
    }

    #[test]
    fn assertions_name_the_client_and_the_token_endpoint_and_verify_with_the_key() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use gatehouse_core::keys::SigningAlgorithm;
        use gatehouse_core::secret::MasterKey;

        let sealer = MasterKey::generate().sealer();
        let (_, key) = SigningKey::generate(SigningAlgorithm::Es256, 0, 0, &sealer).unwrap();
        let provider = OAuthProvider {
            name: "idp".into(),
            token_url: "https://idp.example/token".into(),
            authorization_url: None,
            client_id: "gatehouse".into(),
            client_secret_sealed: None,
            auth_method: ClientAuthMethod::PrivateKeyJwt,
            grant: GrantType::ClientCredentials,
            audience: None,
            resource: None,
            username: None,
            password_sealed: None,
            signing_key_sealed: None,
            signing_kid: Some(key.kid.clone()),
            signing_alg: Some("ES256".into()),
            signing_public_jwk: None,
            issuer: None,
            authorization_response_iss_parameter_supported: false,
            created_at: 0,
            updated_at: 0,
        };
        let jws = sign_assertion(&key, &provider, "gatehouse", 1_000).unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        let decode = |part: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.kid.as_str());
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "gatehouse");
        assert_eq!(claims["sub"], "gatehouse");
        assert_eq!(claims["aud"], "https://idp.example/token");
        assert_eq!(claims["exp"], 1_000 + ASSERTION_LIFETIME);
        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert!(key.verify(signed.as_bytes(), &signature));
        // A provider whose issuer is recorded is addressed by it.
        let with_issuer = OAuthProvider {
            issuer: Some("https://idp.example".into()),
            ..provider
        };
        let jws = sign_assertion(&key, &with_issuer, "gatehouse", 1_000).unwrap();
        let claims = decode(jws.split('.').nth(1).unwrap());
        assert_eq!(claims["aud"], "https://idp.example");
    }
}
