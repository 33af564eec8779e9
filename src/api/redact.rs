//! Secrets scrubbed from text that came from the network (error details, transport errors)
//! or from the configuration (`DEVIN_API_URL`), before it is logged, shown or exposed: an API
//! or proxy that echoes the `Authorization` header must not put the token in a log line.

use std::collections::HashMap;

pub use crate::config::REDACTED;
use crate::config::redact_userinfo;

/// Shortest piece of the token redacted on its own, in bytes: an API or proxy that echoes
/// the token cut short (its first 16 characters, say) must give nothing away, while a random
/// token shares no piece this long with ordinary text by chance.
const MIN_FRAGMENT: usize = 8;

/// `text` without `token` (in any case, or any piece of it of [`MIN_FRAGMENT`] or more),
/// without anything that looks like a Devin token (`cog_...`) or a bearer or basic
/// credential, and without the `user:password@` part of URLs.
pub fn redact(text: &str, token: &str) -> String {
    let mut out = redact_token(text, token);
    out = redact_after(&out, "cog_");
    out = redact_after(&out, "bearer ");
    out = redact_after(&out, "basic ");
    redact_userinfo(&out)
}

/// A URL for display, without its `user:password@` part.
pub fn redact_url(url: &str) -> String {
    redact_userinfo(url)
}

/// Replaces every piece of `token` in `text` ([`MIN_FRAGMENT`] bytes or more, or the whole
/// token when it is shorter), compared without ASCII case. An error body may be large and
/// comes from a hostile network: the scan is a few substring searches, not a loop per byte.
fn redact_token(text: &str, token: &str) -> String {
    if token.is_empty() {
        return text.to_string();
    }
    // ASCII lowercasing keeps every byte where it was, so positions carry over to `text`.
    let (token, lower) = (token.to_ascii_lowercase(), text.to_ascii_lowercase());
    let (t, l) = (token.as_bytes(), lower.as_bytes());
    let width = t.len().min(MIN_FRAGMENT);
    // Every piece of `width` bytes holds one of these blocks (at offsets 0, b, 2b, ...)
    // whole, since 2b - 1 <= width: each piece is found from a block found in `text`.
    let b = width.div_ceil(2);
    let mut blocks: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for offset in (0..=t.len() - b).step_by(b) {
        blocks
            .entry(&t[offset..offset + b])
            .or_default()
            .push(offset);
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (block, offsets) in &blocks {
        for at in find_all(&lower, block) {
            extend(t, l, at, offsets, b, width, &mut runs);
        }
    }
    runs.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut open = false;
    for (start, end) in runs {
        // A piece of a multi-byte token may start or end inside a character: take it whole.
        let start = (0..=start).rev().find(|&i| text.is_char_boundary(i));
        let end = (end..=text.len()).find(|&i| text.is_char_boundary(i));
        let (start, end) = (start.unwrap_or(0), end.unwrap_or(text.len()));
        // Overlapping or touching the run before: one redaction for both.
        if !open || start > copied {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            open = true;
        }
        copied = copied.max(end);
    }
    out.push_str(&text[copied..]);
    out
}

/// Where `needle` starts in `haystack`, overlapping finds included.
fn find_all<'a>(haystack: &'a str, needle: &'a [u8]) -> Box<dyn Iterator<Item = usize> + 'a> {
    let overlaps = (1..needle.len()).any(|k| needle[k..] == needle[..needle.len() - k]);
    match std::str::from_utf8(needle) {
        // One searcher over the whole text: the common case, and fast.
        Ok(needle) if !overlaps => Box::new(haystack.match_indices(needle).map(|(i, _)| i)),
        // A block like "aaaa", or one cut inside a character of the token.
        _ => Box::new(
            haystack
                .as_bytes()
                .windows(needle.len())
                .enumerate()
                .filter(move |(_, w)| *w == needle)
                .map(|(i, _)| i),
        ),
    }
}

/// Records the run of `text` (lowercased: `l`) around the block found at `at` that matches
/// the token (`t`) aligned so that one of the block's `offsets` falls on `at`, if it is at
/// least `width` long.
fn extend(
    t: &[u8],
    l: &[u8],
    at: usize,
    offsets: &[usize],
    b: usize,
    width: usize,
    runs: &mut Vec<(usize, usize)>,
) {
    for &offset in offsets {
        let before = l[..at]
            .iter()
            .rev()
            .zip(t[..offset].iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        let after = l[at + b..]
            .iter()
            .zip(&t[offset + b..])
            .take_while(|(x, y)| x == y)
            .count();
        let (start, end) = (at - before, at + b + after);
        if end - start < width {
            continue;
        }
        // A block's finds come in order: a text echoing the token over and over makes one
        // long run, not one per echo.
        match runs.last_mut() {
            Some((s, e)) if *s <= start && start <= *e => *e = (*e).max(end),
            _ => runs.push((start, end)),
        }
    }
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
    fn the_token_goes_in_any_case_and_in_part() {
        // Not cog_-shaped: nothing but its own value gives it away.
        let token = "tok-Sup3rS3cret-0123456789abcdef";
        for (text, want) in [
            (format!("bad {token}!"), "bad <redacted>!"),
            (format!("bad {}!", token.to_uppercase()), "bad <redacted>!"),
            (format!("bad {}...", &token[..16]), "bad <redacted>..."),
            (format!("bad ...{}", &token[20..]), "bad ...<redacted>"),
            (format!("a{}b", &token[3..11]), "a<redacted>b"),
            // Shorter pieces than MIN_FRAGMENT stay: they are not worth a guess.
            (format!("a {} b", &token[..7]), "a tok-Sup b"),
        ] {
            assert_eq!(redact(&text, token), want, "{text}");
        }
        // A token shorter than that goes whole, in any case; multi-byte text around it stays.
        assert_eq!(redact("café SEKRIT café", "sekrit"), "café <redacted> café");
        assert_eq!(redact("éééééééé", "é-é-é-é-"), "éééééééé");
        assert_eq!(redact("xé-é-é-é-x", "é-é-é-é-"), "x<redacted>x");
    }

    /// The text with every byte of every `MIN_FRAGMENT`-long window found in the token
    /// redacted, the slow and obvious way.
    fn reference(text: &str, token: &str) -> String {
        let (l, t) = (text.to_ascii_lowercase(), token.to_ascii_lowercase());
        let width = t.len().min(MIN_FRAGMENT);
        let mut hidden = vec![false; text.len()];
        for (i, window) in l.as_bytes().windows(width).enumerate() {
            if t.as_bytes().windows(width).any(|w| w == window) {
                hidden[i..i + width].fill(true);
            }
        }
        let mut out = String::new();
        for (i, c) in text.char_indices() {
            match (hidden[i], i > 0 && hidden[i - 1]) {
                (true, true) => {}
                (true, false) => out.push_str(REDACTED),
                _ => out.push(c),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn every_piece_of_the_token_goes(
            token in "[aAbB1-]{1,20}",
            chunks in proptest::collection::vec((0usize..20, 0usize..20, proptest::bool::ANY, "[ab1xé -]"), 0..12),
        ) {
            // Pieces of the token, in either case, between other characters.
            let mut text = String::new();
            for (from, to, upper, other) in chunks {
                let (from, to) = (from.min(token.len()), to.min(token.len()));
                let piece = &token[from.min(to)..to.max(from)];
                text.push_str(&if upper { piece.to_uppercase() } else { piece.to_string() });
                text.push_str(&other);
            }
            proptest::prop_assert_eq!(redact_token(&text, &token), reference(&text, &token));
        }
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
