//! The text exposition format written straight into a byte buffer, for the families with a
//! series per label combination of an org's sessions: they are most of a large body, and
//! building each as a protobuf `Metric` (label pairs of owned strings) before encoding cost
//! more time and memory than the text itself.

/// Writes the `# HELP` and `# TYPE` lines of a family.
pub(super) fn header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    for b in help.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
}

/// Writes `name{k="v",...}`: label values escaped as the format requires.
pub(super) fn series(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)]) {
    out.extend_from_slice(name.as_bytes());
    out.push(b'{');
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"=\"");
        label_value(out, value);
        out.push(b'"');
    }
    out.push(b'}');
}

fn label_value(out: &mut Vec<u8>, value: &str) {
    // Most values need no escaping: copy them whole.
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// Writes ` <n>\n`: a whole-number sample value.
pub(super) fn count(out: &mut Vec<u8>, n: u64) {
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.push(b'\n');
}

/// Writes ` <micros / 1e6>\n` exactly, as a decimal with at most six fraction digits (no
/// float rounding: the sum of millionths is what the store keeps).
pub(super) fn millionths(out: &mut Vec<u8>, micros: u64) {
    let (whole, frac) = (micros / 1_000_000, micros % 1_000_000);
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
    if frac != 0 {
        let mut digits = [b'0'; 6];
        let mut f = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        let len = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&digits[..len]);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(
            text(|o| series(o, "m", &[("a", "x\"y\\z\nw"), ("b", "plain")])),
            r#"m{a="x\"y\\z\nw",b="plain"}"#
        );
        assert_eq!(
            text(|o| header(o, "m", "line\\one\ntwo", "gauge")),
            "# HELP m line\\\\one\\ntwo\n# TYPE m gauge\n"
        );
    }

    #[test]
    fn values_are_exact() {
        assert_eq!(text(|o| count(o, 0)), " 0\n");
        assert_eq!(text(|o| count(o, u64::MAX)), " 18446744073709551615\n");
        assert_eq!(text(|o| millionths(o, 0)), " 0\n");
        assert_eq!(text(|o| millionths(o, 3_250_000)), " 3.25\n");
        assert_eq!(text(|o| millionths(o, 1)), " 0.000001\n");
        assert_eq!(text(|o| millionths(o, 12_000_010)), " 12.00001\n");
        // Every value parses back to the float the crate's encoder would have written.
        for micros in [1u64, 999_999, 1_000_001, 123_456_789, 98_765_432_100] {
            let s = text(|o| millionths(o, micros));
            let parsed: f64 = s.trim().parse().unwrap();
            assert_eq!(parsed, micros as f64 / 1e6, "{s}");
        }
    }
}
