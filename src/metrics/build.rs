//! The exporter's own identity: its build, and whether its data is simulated.

use super::families::{BUILD_INFO, DEMO_MODE};
use super::text::Family;
use crate::{DataSource, REVISION, VERSION};

/// Appends `devin_exporter_build_info`, and `devin_exporter_demo_mode` when the data is
/// simulated: simulated data must not pass for real, so the body itself says so.
pub(super) fn write_to(out: &mut Vec<u8>, source: DataSource) {
    let mut build = Family::new(&BUILD_INFO);
    build.count(&[VERSION, REVISION], 1);
    build.write_to(out);
    if source == DataSource::Simulated {
        let mut demo = Family::new(&DEMO_MODE);
        demo.count(&[], 1);
        demo.write_to(out);
    }
}
