//! The latency-against-load plot: p50, p90, p99 and p99.9 against the
//! offered rate, both axes logarithmic, as a PNG.
//!
//! Drawn with plotters' bitmap backend; its text is rasterised by ab_glyph
//! from DejaVu Sans Mono, compiled into the tool (`fonts/`, with its
//! licence), so the plot needs no fontconfig and no system fonts. The
//! pixels are encoded by the `png` crate.

use std::path::Path;
use std::sync::Once;

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;

use crate::LoadError;
use crate::sweep::{StepReport, SweepReport};

/// DejaVu Sans Mono 2.37, unmodified (fonts/LICENSE-DejaVu.txt).
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";

/// Width and height of the plot, pixels.
pub const SIZE: (u32, u32) = (1000, 640);

/// Reads one percentile off a step.
type Read = fn(&StepReport) -> f64;

/// The percentiles drawn: label, colour, and how to read them off a step.
const SERIES: [(&str, RGBColor, Read); 4] = [
    ("p50", RGBColor(31, 119, 180), |s| s.p50_ms),
    ("p90", RGBColor(44, 160, 44), |s| s.p90_ms),
    ("p99", RGBColor(255, 127, 14), |s| s.p99_ms),
    ("p99.9", RGBColor(214, 39, 40), |s| s.p999_ms),
];

fn register() -> Result<(), LoadError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        if register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            result = Err(LoadError("the embedded font does not load".into()));
        }
    });
    result
}

/// A latency tick: `0.5`, `2`, `150`.
fn millis(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').to_string()
    }
}

fn plot_error(e: impl std::fmt::Display) -> LoadError {
    LoadError(format!("plot: {e}"))
}

/// Draws `runs` (a label and a sweep each) into an RGB buffer of [`SIZE`]
/// and returns the PNG. The last run is drawn solid with points; earlier
/// ones (baselines) dashed and lighter.
pub fn render_png(title: &str, runs: &[(String, SweepReport)]) -> Result<Vec<u8>, LoadError> {
    register()?;
    let steps = || runs.iter().flat_map(|(_, r)| r.steps.iter());
    if steps().next().is_none() {
        return Err(LoadError("plot: no figures to draw".into()));
    }
    let rate = |s: &StepReport| f64::from(s.offered_per_sec.max(1));
    let x_lo = steps().map(rate).fold(f64::INFINITY, f64::min);
    let x_hi = steps().map(rate).fold(0.0, f64::max);
    let lat = || steps().flat_map(|s| SERIES.iter().map(move |(_, _, read)| read(s).max(0.001)));
    let y_lo = lat().fold(f64::INFINITY, f64::min);
    let y_hi = lat().fold(0.0, f64::max);

    let (w, h) = SIZE;
    let mut pixels = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (main, footer) = root.split_vertically(h - 34);
        // A tick at every offered rate (log scale's own would skip most).
        let mut ticks: Vec<f64> = steps().map(rate).collect();
        ticks.sort_by(f64::total_cmp);
        ticks.dedup();
        let x_range = (x_lo / 1.25..x_hi * 1.25)
            .log_scale()
            .with_key_points(ticks);
        let y_range = (y_lo / 1.6..y_hi * 1.6).log_scale();
        let mut chart = ChartBuilder::on(&main)
            .caption(title, (FAMILY, 17))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range, y_range)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("offered load (requests/s)")
            .y_desc("latency from intended send time (ms)")
            .axis_desc_style((FAMILY, 15))
            .label_style((FAMILY, 13))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| millis(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(plot_error)?;

        let last = runs.len() - 1;
        for (n, (label, report)) in runs.iter().enumerate() {
            for (name, color, read) in SERIES {
                let points: Vec<(f64, f64)> = report
                    .steps
                    .iter()
                    .map(|s| (rate(s), read(s).max(0.001)))
                    .collect();
                if n == last {
                    chart
                        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                        .map_err(plot_error)?
                        .label(name)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2))
                        });
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(plot_error)?;
                } else {
                    let faded = color.mix(0.55);
                    let series = chart
                        .draw_series(DashedLineSeries::new(points, 6, 4, faded.stroke_width(1)))
                        .map_err(plot_error)?;
                    // One legend line per earlier run: the colours are the last run's.
                    if name == "p50" {
                        series.label(format!("{label} (dashed)")).legend(|(x, y)| {
                            DashedPathElement::new(
                                vec![(x, y), (x + 22, y)],
                                4,
                                3,
                                RGBColor(110, 110, 110).stroke_width(1),
                            )
                        });
                    }
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(plot_error)?;

        // What the server actually answered at each offered rate.
        let (last_label, report) = &runs[last];
        let achieved: Vec<String> = report
            .steps
            .iter()
            .map(|s| format!("{}→{:.0}", s.offered_per_sec, s.achieved_per_sec))
            .collect();
        let prefix = if runs.len() > 1 {
            format!("{last_label}: ")
        } else {
            String::new()
        };
        footer
            .draw_text(
                &format!(
                    "{prefix}offered→achieved req/s: {}; at most {} in flight, {} s per rate",
                    achieved.join("  "),
                    report.max_in_flight,
                    report.secs_per_rate
                ),
                &(FAMILY, 13).into_text_style(&footer),
                (84, 6),
            )
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }

    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(plot_error)?;
        writer.write_image_data(&pixels).map_err(plot_error)?;
        writer.finish().map_err(plot_error)?;
    }
    Ok(png)
}

/// Renders `runs` and writes the PNG to `path`.
pub fn write_png(
    path: &Path,
    title: &str,
    runs: &[(String, SweepReport)],
) -> Result<(), LoadError> {
    let png = render_png(title, runs)?;
    std::fs::write(path, png)
        .map_err(|e| LoadError(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::MIX;

    fn step(rate: u32, p50: f64) -> StepReport {
        StepReport {
            offered_per_sec: rate,
            window_secs: 10.0,
            scheduled: u64::from(rate) * 10,
            sent: u64::from(rate) * 10,
            not_sent: 0,
            errors: 0,
            errors_by_kind: Default::default(),
            achieved_per_sec: f64::from(rate),
            elapsed_secs: 10.0,
            p50_ms: p50,
            p90_ms: p50 * 2.0,
            p99_ms: p50 * 5.0,
            p999_ms: p50 * 10.0,
            max_ms: p50 * 20.0,
            waited_for_slot: 0,
            peak_in_flight: 4,
            send_lag_p99_ms: 0.05,
            operations: Vec::new(),
        }
    }

    #[test]
    fn draws_a_png_with_text() {
        let report = SweepReport {
            mix: MIX.into(),
            targets: 1,
            users: 100,
            max_in_flight: 64,
            secs_per_rate: 10.0,
            steps: vec![step(250, 0.6), step(1000, 0.9), step(4000, 40.0)],
        };
        let runs = vec![
            ("baseline".to_string(), report.clone()),
            ("run".to_string(), report),
        ];
        let png = render_png("test", &runs).expect("renders");
        assert_eq!(&png[1..4], b"PNG");
        // Width and height in the IHDR chunk.
        assert_eq!(&png[16..24], &[0, 0, 0x03, 0xe8, 0, 0, 0x02, 0x80]);
        assert!(render_png("empty", &[]).is_err());
    }

    #[test]
    fn tick_labels() {
        assert_eq!(millis(1500.0), "1500");
        assert_eq!(millis(0.5), "0.5");
        assert_eq!(millis(2.0), "2");
        assert_eq!(millis(150.0), "150");
    }
}
