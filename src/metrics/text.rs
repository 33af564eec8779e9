//! The text exposition format written straight into byte buffers. Building each series as
//! the prometheus crate's protobuf `Metric` (label pairs of owned strings, then its encoder)
//! cost about 1.2 us a series, several times the text itself; at fleet scale that was most of
//! a scrape's CPU.

use std::io::Write;

use super::families::FamilyDef;

/// One family written as text into its own buffer, appended to the body when the scrape's
/// series are all in. Its header goes above the first series, so a family without series
/// leaves nothing behind (a HELP/TYPE pair with nothing under it). A series is given as its
/// label values, in the order of the family's declared label names.
pub(super) struct Family {
    def: &'static FamilyDef,
    buf: Vec<u8>,
}

impl Family {
    /// An empty family of `def`.
    pub(super) fn new(def: &'static FamilyDef) -> Self {
        Family {
            def,
            buf: Vec::new(),
        }
    }

    /// Starts a series line: the header first if this is the family's first series.
    fn line(&mut self, suffix: &str, values: &[&str], le: Option<&str>) -> &mut Vec<u8> {
        if self.buf.is_empty() {
            header(&mut self.buf, self.def);
        }
        self.buf.extend_from_slice(self.def.name.as_bytes());
        series_with(&mut self.buf, suffix, self.def.labels, values, le);
        &mut self.buf
    }

    /// A series with a float value.
    pub(super) fn value(&mut self, values: &[&str], v: f64) {
        float(self.line("", values, None), v);
    }

    /// A series with a whole-number value.
    pub(super) fn count(&mut self, values: &[&str], n: u64) {
        count(self.line("", values, None), n);
    }

    /// A series whose value is `micros` millionths, written exactly.
    pub(super) fn millionths(&mut self, values: &[&str], micros: u64) {
        millionths(self.line("", values, None), micros);
    }

    /// The `_bucket` series (cumulative counts by upper bound; `+Inf` is added), `_sum` and
    /// `_count` of one histogram.
    pub(super) fn histogram_series(
        &mut self,
        values: &[&str],
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
            count(self.line("_bucket", values, Some(le)), n);
        }
        count(self.line("_bucket", values, Some("+Inf")), count_all);
        let line = self.line("_sum", values, None);
        line.push(b' ');
        sum.number(line);
        line.push(b'\n');
        count(self.line("_count", values, None), count_all);
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
pub(super) fn header(out: &mut Vec<u8>, def: &FamilyDef) {
    let name = def.name;
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    for b in def.help.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(def.kind.as_str().as_bytes());
    out.push(b'\n');
}

/// Writes `{k="v",...}` of `def`'s label names and `values`: escaped as the format requires.
pub(super) fn label_set(out: &mut Vec<u8>, def: &FamilyDef, values: &[&str]) {
    series_with(out, "", def.labels, values, None);
}

/// Writes `suffix{k="v",...,le="..."}` after a family's name; nothing in braces when there
/// are no labels.
fn series_with(out: &mut Vec<u8>, suffix: &str, names: &[&str], values: &[&str], le: Option<&str>) {
    // A writer that gives other labels than its family declares is a bug, caught by the
    // tests (which run debug builds); a release build never pays for the check.
    debug_assert_eq!(names.len(), values.len(), "labels {names:?}");
    out.extend_from_slice(suffix.as_bytes());
    if names.is_empty() && le.is_none() {
        return;
    }
    out.push(b'{');
    let le = le.map(|v| ("le", v));
    for (i, (key, value)) in names
        .iter()
        .copied()
        .zip(values.iter().copied())
        .chain(le)
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

/// A time as Unix seconds, the unit of every `_timestamp_seconds` family (0 before 1970).
pub(super) fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
    use crate::metrics::families::Kind;

    /// A family for the tests: `name` with `labels`.
    fn def(
        name: &'static str,
        kind: Kind,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> &'static FamilyDef {
        Box::leak(Box::new(FamilyDef {
            name,
            kind,
            help,
            labels,
        }))
    }

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(
            text(|o| label_set(
                o,
                def("m", Kind::Gauge, "h.", &["a", "b"]),
                &["x\"y\\z\nw", "plain"]
            )),
            r#"{a="x\"y\\z\nw",b="plain"}"#
        );
        assert_eq!(
            text(|o| header(o, def("m", Kind::Gauge, "line\\one\ntwo", &[]))),
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
        let f = Family::new(def("m", Kind::Gauge, "help", &[]));
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
        let mut ours = Family::new(def("lat_seconds", Kind::Histogram, "Latency.", &["org_id"]));
        ours.histogram_series(
            &["a\"b"],
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
        let g_def = def("g", Kind::Gauge, "A gauge.", &[]);
        let mut gauge = Family::new(g_def);
        for v in [0.0, 1.0, -3.0, 0.1, 1234.5678, 1e-7, 1.5e20] {
            g.set(v);
            let mut theirs = Vec::new();
            TextEncoder::new()
                .encode(&g.collect(), &mut theirs)
                .unwrap();
            let mut one = Family::new(g_def);
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
        let mut f = Family::new(def("acus", Kind::Histogram, "ACUs.", &["org_id"]));
        f.histogram_series(
            &["a"],
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
