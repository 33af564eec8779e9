//! The text exposition format written straight into byte buffers. Building each series as
//! the prometheus crate's protobuf `Metric` (label pairs of owned strings, then its encoder)
//! cost about 1.2 us a series, several times the text itself; at fleet scale that was most of
//! a scrape's CPU.

use std::borrow::Cow;
use std::io::Write;

/// One family written as text into its own buffer, appended to the body when the scrape's
/// series are all in. Its header goes above the first series, so a family without series
/// leaves nothing behind (a HELP/TYPE pair with nothing under it).
pub(super) struct Family {
    name: Cow<'static, str>,
    help: Cow<'static, str>,
    kind: &'static str,
    buf: Vec<u8>,
}

impl Family {
    fn new(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
        kind: &'static str,
    ) -> Self {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            buf: Vec::new(),
        }
    }

    pub(super) fn gauge(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
    ) -> Self {
        Family::new(name, help, "gauge")
    }

    pub(super) fn counter(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
    ) -> Self {
        Family::new(name, help, "counter")
    }

    pub(super) fn histogram(
        name: impl Into<Cow<'static, str>>,
        help: impl Into<Cow<'static, str>>,
    ) -> Self {
        Family::new(name, help, "histogram")
    }

    /// Starts a series line: the header first if this is the family's first series.
    fn line(&mut self, suffix: &str, labels: &[(&str, &str)], le: Option<&str>) -> &mut Vec<u8> {
        if self.buf.is_empty() {
            header(&mut self.buf, &self.name, &self.help, self.kind);
        }
        self.buf.extend_from_slice(self.name.as_bytes());
        series_with(&mut self.buf, suffix, labels, le);
        &mut self.buf
    }

    /// A series with a float value.
    pub(super) fn value(&mut self, labels: &[(&str, &str)], v: f64) {
        float(self.line("", labels, None), v);
    }

    /// A series with a whole-number value.
    pub(super) fn count(&mut self, labels: &[(&str, &str)], n: u64) {
        count(self.line("", labels, None), n);
    }

    /// A series whose value is `micros` millionths, written exactly.
    pub(super) fn millionths(&mut self, labels: &[(&str, &str)], micros: u64) {
        millionths(self.line("", labels, None), micros);
    }

    /// The `_bucket` series (cumulative counts by upper bound; `+Inf` is added), `_sum` and
    /// `_count` of one histogram.
    pub(super) fn histogram_series(
        &mut self,
        labels: &[(&str, &str)],
        buckets: impl IntoIterator<Item = (Bound, u64)>,
        sum: Bound,
        count_all: u64,
    ) {
        let mut le = Vec::with_capacity(24);
        for (bound, n) in buckets {
            le.clear();
            bound.number(&mut le);
            // Written from numbers: always ASCII.
            let le = std::str::from_utf8(&le).unwrap_or("+Inf");
            count(self.line("_bucket", labels, Some(le)), n);
        }
        count(self.line("_bucket", labels, Some("+Inf")), count_all);
        let line = self.line("_sum", labels, None);
        line.push(b' ');
        sum.number(line);
        line.push(b'\n');
        count(self.line("_count", labels, None), count_all);
    }

    /// Appends the family to the body (nothing if it has no series).
    pub(super) fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf);
    }
}

/// A number as a histogram bound or sum: a float, or a whole number of millionths (written
/// exactly).
#[derive(Clone, Copy)]
pub(super) enum Bound {
    Float(f64),
    Millionths(u64),
}

impl Bound {
    /// Writes the number alone.
    fn number(self, out: &mut Vec<u8>) {
        match self {
            Bound::Float(v) => number(out, v),
            Bound::Millionths(m) => millionths_number(out, m),
        }
    }
}

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

/// Writes `{k="v",...}`: label values escaped as the format requires.
pub(super) fn label_set(out: &mut Vec<u8>, labels: &[(&str, &str)]) {
    series_with(out, "", labels, None);
}

/// Writes `suffix{k="v",...,le="..."}` after a family's name; nothing in braces when there
/// are no labels.
fn series_with(out: &mut Vec<u8>, suffix: &str, labels: &[(&str, &str)], le: Option<&str>) {
    out.extend_from_slice(suffix.as_bytes());
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push(b'{');
    for (i, (key, value)) in labels
        .iter()
        .chain(le.map(|v| ("le", v)).iter())
        .enumerate()
    {
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

/// Writes ` <v>\n`: see [`number`].
pub(super) fn float(out: &mut Vec<u8>, v: f64) {
    out.push(b' ');
    number(out, v);
    out.push(b'\n');
}

/// Writes `v` as the prometheus crate's encoder would (Rust's shortest round-trip form),
/// whole numbers without a fraction, and infinities as the format spells them.
fn number(out: &mut Vec<u8>, v: f64) {
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{v}");
    }
}

/// Writes ` <micros / 1e6>\n`: see [`millionths_number`].
pub(super) fn millionths(out: &mut Vec<u8>, micros: u64) {
    out.push(b' ');
    millionths_number(out, micros);
    out.push(b'\n');
}

/// Writes `micros / 1e6` exactly, as a decimal with at most six fraction digits (no float
/// rounding: the sum of millionths is what the store keeps).
fn millionths_number(out: &mut Vec<u8>, micros: u64) {
    let (whole, frac) = (micros / 1_000_000, micros % 1_000_000);
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
            text(|o| label_set(o, &[("a", "x\"y\\z\nw"), ("b", "plain")])),
            r#"{a="x\"y\\z\nw",b="plain"}"#
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

    #[test]
    fn an_empty_family_writes_nothing() {
        let f = Family::gauge("m", "help");
        assert_eq!(text(|o| f.write_to(o)), "");
    }

    /// Our families read exactly as the prometheus crate's encoder writes them.
    #[test]
    fn families_match_the_crates_encoder() {
        use prometheus::core::{Collector, Metric};
        use prometheus::{Encoder, Histogram, HistogramOpts, TextEncoder};

        let opts = HistogramOpts::new("lat_seconds", "Latency.")
            .const_label("org_id", "a\"b")
            .buckets(vec![0.025, 0.5, 1.0, 30.0]);
        let h = Histogram::with_opts(opts).unwrap();
        for v in [0.01, 0.2, 0.75, 3.5, 99.0] {
            h.observe(v);
        }
        let mut theirs = Vec::new();
        TextEncoder::new()
            .encode(&h.collect(), &mut theirs)
            .unwrap();

        let m = h.metric();
        let p = m.get_histogram();
        let mut ours = Family::histogram("lat_seconds", "Latency.");
        ours.histogram_series(
            &[("org_id", "a\"b")],
            p.get_bucket()
                .iter()
                .map(|b| (Bound::Float(b.upper_bound()), b.cumulative_count())),
            Bound::Float(p.get_sample_sum()),
            p.get_sample_count(),
        );
        assert_eq!(
            text(|o| ours.write_to(o)),
            String::from_utf8(theirs).unwrap()
        );

        let g = prometheus::Gauge::new("g", "A gauge.").unwrap();
        let mut gauge = Family::gauge("g", "A gauge.");
        for v in [0.0, 1.0, -3.0, 0.1, 1234.5678, 1e-7, 1.5e20] {
            g.set(v);
            let mut theirs = Vec::new();
            TextEncoder::new()
                .encode(&g.collect(), &mut theirs)
                .unwrap();
            let mut one = Family::gauge("g", "A gauge.");
            one.value(&[], v);
            assert_eq!(
                text(|o| one.write_to(o)),
                String::from_utf8(theirs).unwrap(),
                "{v}"
            );
            gauge.value(&[], v);
        }
        // The header once, above the first series.
        assert_eq!(text(|o| gauge.write_to(o)).matches("# TYPE").count(), 1);
    }

    #[test]
    fn millionth_histograms_are_exact() {
        let mut f = Family::histogram("acus", "ACUs.");
        f.histogram_series(
            &[("org_id", "a")],
            [
                (Bound::Millionths(500_000), 1),
                (Bound::Millionths(2_000_000), 3),
            ],
            Bound::Millionths(4_100_001),
            4,
        );
        assert_eq!(
            text(|o| f.write_to(o)),
            "# HELP acus ACUs.\n# TYPE acus histogram\n\
             acus_bucket{org_id=\"a\",le=\"0.5\"} 1\n\
             acus_bucket{org_id=\"a\",le=\"2\"} 3\n\
             acus_bucket{org_id=\"a\",le=\"+Inf\"} 4\n\
             acus_sum{org_id=\"a\"} 4.100001\n\
             acus_count{org_id=\"a\"} 4\n"
        );
    }
}
