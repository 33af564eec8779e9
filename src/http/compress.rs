//! Gzip for the metrics body. Prometheus always asks for it, and at fleet scale compressing
//! cost more CPU than rendering: one pass at the fastest level into a buffer sized for the
//! result, instead of a streaming encoder at the default level.

use std::io::Write;

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_ENCODING;

/// True if the request's `Accept-Encoding` admits gzip (`gzip` or `*` with a non-zero q).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

/// `body` gzipped at the fastest level.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    // Exposition text compresses about 20:1; an eighth is room enough to rarely grow.
    let out = Vec::with_capacity(body.len() / 8 + 64);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, value.parse().unwrap());
        h
    }

    #[test]
    fn accept_encoding_forms() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("identity, GZIP;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("br, deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn round_trip() {
        let body = "devin_up{org_id=\"a\"} 1\n".repeat(1000);
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&gzip(body.as_bytes())[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, body);
    }
}
