//! Training curves: accuracy and loss per epoch (train dashed, validation solid) for one or
//! more runs, as PNG or SVG by the file's extension.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::record::EpochLogs;
use crate::verdict::Spread;

const PALETTE: [RGBColor; 6] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(255, 127, 14), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

type Run<'a> = (&'a str, &'a [EpochLogs]);

/// The largest magnitude a chart shows.
const MAX_VALUE: f64 = 1e12;
/// The most epochs a chart shows (ticks and points stay bounded).
const MAX_EPOCHS: u32 = 100_000;
/// Runs of at most this many epochs get a marker at each epoch.
const MAX_MARKED_EPOCHS: usize = 50;

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, runs: &[Run<'_>], title: &str, train: fn(&EpochLogs) -> f64, val: fn(&EpochLogs) -> f64) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let epochs = runs.iter().flat_map(|(_, h)| h.iter().map(|l| l.epoch)).max().unwrap_or(1).max(2) as f64;
    // Values beyond MAX_VALUE or not finite (a diverged run) are left out of the axis and the
    // curves, whose pixel coordinates would overflow; a padding relative to the values' size keeps the range from
    // vanishing in rounding when they are all equal.
    let values: Vec<f64> = runs.iter().flat_map(|(_, h)| h.iter().flat_map(|l| [train(l), val(l)])).filter(|v| v.abs() <= MAX_VALUE).collect();
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if values.is_empty() { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.08).max(0.01 * hi.abs().max(lo.abs()).max(1.0));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(1f64..epochs, (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(title)
        .x_labels((epochs as usize).min(20))
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .light_line_style(WHITE)
        .draw()
        .map_err(err)?;
    for (i, (_, history)) in runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = |f: fn(&EpochLogs) -> f64| history.iter().map(move |l| (l.epoch as f64, f(l))).filter(|p| p.1.abs() <= MAX_VALUE).collect::<Vec<_>>();
        chart.draw_series(LineSeries::new(points(val), color.stroke_width(2))).map_err(err)?;
        // Markers show short runs' epochs, and a one-epoch run, whose lines have no length.
        if history.len() <= MAX_MARKED_EPOCHS {
            chart.draw_series(points(val).into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(err)?;
            chart.draw_series(points(train).into_iter().map(|p| Circle::new(p, 3, color.stroke_width(1)))).map_err(err)?;
        }
        chart.draw_series(DashedLineSeries::new(points(train), 6, 4, color.stroke_width(1))).map_err(err)?;
    }
    Ok(())
}

/// What a chart file shows.
enum Chart<'a> {
    /// Accuracy and loss by epoch.
    Runs(&'a [Run<'a>]),
    /// Validation accuracy by cumulative compute, with the arms in legend order.
    Compute(&'a [Curve], &'a [&'a str]),
}

/// A legend entry: label, colour, and whether its line is dashed (a training curve).
type Entry = (String, RGBColor, bool);

/// Legend entries a row holds, and the height of a row, in pixels.
const LEGEND_COLUMN: u32 = 300;
const LEGEND_ROW: u32 = 20;

/// Draws the legend in its own strip below the charts, so it covers no point.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[Entry], per_row: usize) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    for (i, (label, color, dashed)) in entries.iter().enumerate() {
        let x = 64 + (i % per_row) as i32 * LEGEND_COLUMN as i32;
        let y = 8 + (i / per_row) as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        let sample: &[(i32, i32)] = if *dashed { &[(0, 8), (12, 20)] } else { &[(0, 20)] };
        for &(a, b) in sample {
            area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], color.stroke_width(if *dashed { 1 } else { 2 }))).map_err(err)?;
        }
        area.draw(&Text::new(label.clone(), (x + 28, y - 7), ("sans-serif", 15).into_font())).map_err(err)?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart<'_>) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let entries: Vec<Entry> = match chart {
        Chart::Runs(runs) => runs.iter().enumerate().flat_map(|(i, (name, _))| [(format!("{name} (validation)"), PALETTE[i % PALETTE.len()], false), (format!("{name} (train)"), PALETTE[i % PALETTE.len()], true)]).collect(),
        Chart::Compute(_, arms) => arms.iter().enumerate().map(|(i, arm)| (arm.to_string(), PALETTE[i % PALETTE.len()], false)).collect(),
    };
    let (w, h) = root.dim_in_pixel();
    let per_row = ((w - 64) / LEGEND_COLUMN).max(1) as usize;
    let rows = entries.len().div_ceil(per_row) as u32;
    let (charts, key) = root.split_vertically(h.saturating_sub(rows * LEGEND_ROW + 16).max(h / 2));
    legend(&key, &entries, per_row)?;
    let (left, right) = charts.split_horizontally(w / 2);
    match chart {
        Chart::Runs(runs) => {
            panel(&left, runs, "accuracy", |l| l.acc, |l| l.val_acc)?;
            panel(&right, runs, "loss", |l| l.loss, |l| l.val_loss)?;
        }
        Chart::Compute(curves, arms) => {
            compute_panel(&left, curves, arms, ("training FLOPs", |v| format!("{v:.1e}")), |p| p.0, |b| b.0)?;
            compute_panel(&right, curves, arms, ("wall seconds", plain), |p| p.1, |b| b.1)?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

/// Writes `chart` into `path`, as PNG or SVG by its extension. It is drawn in memory and
/// written atomically, so a failure never leaves a torn file where an old chart was.
fn save(chart: &Chart<'_>, path: &Path) -> Result<(), String> {
    let (w, h) = (1280, 520);
    let fail = |e: String| format!("{}: cannot draw the chart: {e}", path.display());
    let bytes = match path.extension().and_then(|e| e.to_str()).map(str::to_lowercase).as_deref() {
        Some("svg") => {
            let mut svg = String::new();
            draw(SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(), chart).map_err(fail)?;
            svg.into_bytes()
        }
        Some("png") => {
            let mut rgb = vec![0u8; (w * h * 3) as usize];
            draw(BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(), chart).map_err(fail)?;
            crate::files::png_bytes(w, h, rgb).map_err(fail)?
        }
        _ => return Err(format!("{}: the chart's file name must end in .png or .svg", path.display())),
    };
    crate::files::write_atomic(path, &bytes).map_err(|e| format!("{}: cannot write the chart: {e}", path.display()))
}

/// Draws the runs' curves into `path` (.png or .svg).
pub fn plot(runs: &[Run<'_>], path: &Path) -> Result<(), String> {
    let fail = |e: String| format!("{}: cannot draw the chart: {e}", path.display());
    if runs.iter().all(|(_, h)| h.is_empty()) {
        return Err(fail("the histories hold no epochs".into()));
    }
    if let Some((name, l)) = runs.iter().flat_map(|(n, h)| h.iter().map(move |l| (n, l))).find(|(_, l)| l.epoch == 0 || l.epoch > MAX_EPOCHS) {
        return Err(fail(format!("{name}: epoch {} is outside 1..={MAX_EPOCHS}", l.epoch)));
    }
    save(&Chart::Runs(runs), path)
}

/// One chain's validation accuracy against cumulative compute: (FLOPs, seconds, val_acc) per
/// epoch, and where each earlier stage ended.
struct Curve {
    arm: String,
    points: Vec<(f64, f64, f64)>,
    boundaries: Vec<(f64, f64)>,
}

/// An arm of an experiment: its name and the histories of its stages, in order.
pub type Chain<'a> = (&'a str, Vec<&'a [EpochLogs]>);

fn curves(chains: &[Chain<'_>]) -> Vec<Curve> {
    chains
        .iter()
        .map(|(arm, stages)| {
            let (mut flops, mut wall) = (0.0, 0.0);
            let (mut points, mut boundaries) = (Vec::new(), Vec::new());
            for (i, history) in stages.iter().enumerate() {
                points.extend(history.iter().map(|l| (flops + l.flops, wall + l.wall_seconds, l.val_acc)));
                let last = history.last().map_or((0.0, 0.0), |l| (l.flops, l.wall_seconds));
                (flops, wall) = (flops + last.0, wall + last.1);
                if i + 1 < stages.len() {
                    boundaries.push((flops, wall));
                }
            }
            Curve { arm: arm.to_string(), points, boundaries }
        })
        .collect()
}

/// An axis value as people write it: 0.25, 1.5, 12, 1,250 (a few digits, no exponent).
fn plain(v: &f64) -> String {
    match v.abs() {
        a if a >= 1000.0 => format!("{}{}", if *v < 0.0 { "-" } else { "" }, crate::model::summary::thousands(a.round() as u64)),
        a if a >= 10.0 => format!("{v:.0}"),
        // Two decimals at most, without trailing zeros: 0.25, 0.5, 1, 1.2.
        _ => format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string(),
    }
}

/// A compute panel's axis: its title and how its numbers are written.
type Axis = (&'static str, fn(&f64) -> String);

fn compute_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, curves: &[Curve], arms: &[&str], (title, format): Axis, x: fn(&(f64, f64, f64)) -> f64, bx: fn(&(f64, f64)) -> f64) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let finite = |v: f64| v.is_finite() && v.abs() <= f64::MAX / 4.0;
    let max_x = curves.iter().flat_map(|c| c.points.iter().map(x)).filter(|&v| finite(v)).fold(0f64, f64::max).max(1.0);
    let ys: Vec<f64> = curves.iter().flat_map(|c| c.points.iter().map(|p| p.2)).filter(|v| v.is_finite()).collect();
    let (lo, hi) = ys.iter().fold((1f64, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if ys.is_empty() { (0.0, 1.0) } else { (lo - 0.02, hi + 0.02) };
    let mut chart = ChartBuilder::on(area).caption(title, ("sans-serif", 22)).margin(12).x_label_area_size(36).y_label_area_size(52).build_cartesian_2d(0f64..max_x * 1.02, lo..hi).map_err(err)?;
    chart.configure_mesh().x_desc(title).y_desc("val_acc").x_label_formatter(&format).light_line_style(WHITE).draw().map_err(err)?;
    for (i, arm) in arms.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mine: Vec<&Curve> = curves.iter().filter(|c| c.arm == *arm).collect();
        // Epoch by epoch over the arm's seeds: the mean compute and val_acc, and the val_acc's
        // standard deviation (a band around the mean where there are several seeds).
        let epochs = mine.iter().map(|c| c.points.len()).min().unwrap_or(0);
        let rows: Vec<(f64, Spread)> = (0..epochs)
            .map(|e| (mine.iter().map(|c| x(&c.points[e])).sum::<f64>() / mine.len() as f64, Spread::of(&mine.iter().map(|c| c.points[e].2).collect::<Vec<_>>())))
            .filter(|(v, s)| finite(*v) && s.mean.is_finite())
            .collect();
        if mine.len() > 1 {
            let band = rows.iter().map(|(v, s)| (*v, s.mean + s.std)).chain(rows.iter().rev().map(|(v, s)| (*v, s.mean - s.std)));
            chart.draw_series(std::iter::once(Polygon::new(band.collect::<Vec<_>>(), color.mix(0.2).filled()))).map_err(err)?;
        }
        let line: Vec<(f64, f64)> = rows.iter().map(|(v, s)| (*v, s.mean)).collect();
        chart.draw_series(LineSeries::new(line.clone(), color.stroke_width(2))).map_err(err)?;
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?;
        // A stage boundary: where the earlier stages' compute ends and the next stage begins.
        for c in mine {
            for b in c.boundaries.iter().map(bx).filter(|&v| finite(v)) {
                chart.draw_series(DashedLineSeries::new([(b, lo), (b, hi)], 4, 4, color.mix(0.6).stroke_width(1))).map_err(err)?;
            }
        }
    }
    Ok(())
}

/// The experiment's chart: each arm's validation accuracy against cumulative training FLOPs
/// (left) and wall time (right), earlier stages included, stage boundaries dashed; over
/// several seeds, the mean curve with a band of one standard deviation.
pub fn plot_compute(chains: &[Chain<'_>], path: &Path) -> Result<(), String> {
    let curves = curves(chains);
    let mut arms: Vec<&str> = Vec::new();
    for c in &curves {
        if !arms.contains(&c.arm.as_str()) {
            arms.push(&c.arm);
        }
    }
    save(&Chart::Compute(&curves, &arms), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(epoch: u32, v: f64) -> EpochLogs {
        EpochLogs { epoch, loss: v, acc: v, val_loss: v, val_acc: v, lr: 1e-3, step_size: 1e-3, train_seconds: 1.0, eval_seconds: 1.0, train_images_per_s: 1.0, flops: 0.0, wall_seconds: 0.0, grown: None }
    }

    /// Empty, constant, extreme and non-finite histories: a chart or a clear error, quickly.
    #[test]
    fn degenerate_histories_draw_or_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("c.svg");
        assert!(plot(&[("empty", &[][..])], &svg).unwrap_err().contains("no epochs"));
        assert!(plot(&[("zero", &[logs(0, 0.5)][..])], &svg).unwrap_err().contains("epoch 0"));
        for series in [vec![0.5; 3], vec![1e300, -1e300, 0.5], vec![f64::NAN, f64::INFINITY, 0.5], vec![1e20, 1e20 + 1.0], vec![f64::NAN]] {
            let h: Vec<EpochLogs> = series.iter().enumerate().map(|(i, &v)| logs(i as u32 + 1, v)).collect();
            let started = std::time::Instant::now();
            plot(&[("run", &h[..])], &svg).unwrap_or_else(|e| panic!("{series:?}: {e}"));
            assert!(started.elapsed().as_secs() < 20, "{series:?} took {:?}", started.elapsed());
        }
        plot(&[("one", &[logs(1, 0.5)][..])], &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert_eq!(text.matches("<circle").count(), 4, "each panel (accuracy, loss) shows the epoch's validation and train points");
        let long = [logs(1, 0.5), logs(MAX_EPOCHS, 0.6)];
        plot(&[("long", &long[..])], &svg).unwrap();
    }

    /// The legend has its own strip under the panels, where no point can be.
    #[test]
    fn the_legend_lies_below_the_plot_area() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("c.svg");
        let h: Vec<EpochLogs> = (1..=3).map(|e| logs(e, 0.1 * e as f64)).collect();
        plot(&[("run", &h[..])], &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        let y_of = |label: &str| {
            let tag = &text[..text.find(&format!(">\n{label}\n</text>")).unwrap_or_else(|| panic!("{label} missing"))];
            let tag = &tag[tag.rfind("<text").unwrap()..];
            tag.split("y=\"").nth(1).and_then(|v| v.split('"').next()).unwrap().parse::<f64>().unwrap()
        };
        let lowest_point = text.split("<circle").skip(1).map(|c| c.split("cy=\"").nth(1).unwrap().split('"').next().unwrap().parse::<f64>().unwrap()).fold(0f64, f64::max);
        for label in ["run (validation)", "run (train)"] {
            assert!(y_of(label) > lowest_point + 20.0, "{label} at y {} overlaps the points (lowest at {lowest_point})", y_of(label));
        }
    }

    /// An arm run over several seeds is drawn as its mean curve in a band of one standard
    /// deviation; an arm of one seed as its curve alone.
    #[test]
    fn the_compute_chart_draws_each_arms_mean_with_its_spread() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("c.svg");
        let run = |shift: f64| -> Vec<EpochLogs> { (1..=3).map(|e| EpochLogs { flops: 1e9 * e as f64, wall_seconds: e as f64, ..logs(e, 0.5 + 0.1 * e as f64 + shift) }).collect() };
        let (a, b, c) = (run(0.0), run(0.04), run(-0.1));
        plot_compute(&[("grown", vec![&a[..]]), ("grown", vec![&b[..]]), ("scratch", vec![&c[..]])], &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert_eq!(text.matches("<polygon").count(), 2, "one band per panel, for the arm of two seeds");
        assert_eq!(text.matches("<circle").count(), 2 * (3 + 3), "each arm's mean points, in both panels");
    }

    #[test]
    fn seconds_read_as_plain_numbers() {
        assert_eq!([0.0, 0.5, 2.5, 42.0, 1250.0].map(|v| plain(&v)), ["0", "0.5", "2.5", "42", "1,250"]);
    }
}
