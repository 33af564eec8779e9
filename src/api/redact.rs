//! Secrets scrubbed from text that came from the network (error details, transport errors)
//! or from the configuration (`DEVIN_API_URL`), before it is logged, shown or exposed: an API
//! or proxy that echoes the `Authorization` header must not put the token in a log line.

pub use crate::config::REDACTED;
use crate::config::redact_userinfo;

/// `text` without `token`, without anything that looks like a Devin token (`cog_...`) or a
/// bearer or basic credential, and without the `user:password@` part of URLs.
pub fn redact(text: &str, token: &str) -> String {
    let mut out = if token.is_empty() {
        text.to_string()
    } else {
        text.replace(token, REDACTED)
    };
    out = redact_after(&out, "cog_");
    out = redact_after(&out, "bearer ");
    out = redact_after(&out, "basic ");
    redact_userinfo(&out)
}

/// A URL for display, without its `user:password@` part.
pub fn redact_url(url: &str) -> String {
    redact_userinfo(url)
}

/// Characters a token (or a bearer credential) is made of.
fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b'+' | b'/' | b'=')
}

/// Replaces the run of token characters after every (ASCII, case-insensitive) `prefix`.
fn redact_after(text: &str, prefix: &str) -> String {
    // ASCII lowercasing keeps every byte where it was, so positions carry over to `text`.
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(prefix) {
        let start = from + found + prefix.len();
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| token_char(**b))
                .count();
        if end > start {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = end;
        }
        from = end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_and_token_like_strings_go() {
        let token = "cog_abc123XYZ";
        let text = "Invalid token: Bearer cog_abc123XYZ (also cog_other-token.v2, COG_UPPER)";
        let out = redact(text, token);
        assert_eq!(
            out,
            "Invalid token: Bearer <redacted> (also cog_<redacted>, COG_<redacted>)"
        );
        // A token of another shape, echoed without "Bearer".
        assert_eq!(
            redact("header was sekrit-42 ok", "sekrit-42"),
            "header was <redacted> ok"
        );
        assert_eq!(
            redact("authorization: bearer abc.def", ""),
            "authorization: bearer <redacted>"
        );
        assert_eq!(
            redact("Authorization: Basic dXNlcjpwdw==", ""),
            "Authorization: Basic <redacted>"
        );
        // Nothing to hide: unchanged, multi-byte text included.
        let plain = "HTTP 500: café – internal error; cog_ alone";
        assert_eq!(redact(plain, "cog_zzz"), plain);
    }

    #[test]
    fn url_credentials_go() {
        assert_eq!(
            redact_url("https://user:p%40ss@proxy.example:8443/devin"),
            "https://<redacted>@proxy.example:8443/devin"
        );
        assert_eq!(redact_url("https://api.devin.ai"), "https://api.devin.ai");
        assert_eq!(
            redact(
                "error sending request for url (http://u:pw@10.0.0.1/v3/x?a=b@c)",
                ""
            ),
            "error sending request for url (http://<redacted>@10.0.0.1/v3/x?a=b@c)"
        );
    }
}
