//! `--plot`: Gelem/s against row length (log axis) as an SVG, one colour
//! per thread count: batches solid, single rows dashed, the batches' copy
//! (triangles) and exp (circles) limits thin, and the cache sizes this CPU reports in sysfs as
//! grey verticals where one row's input and output (8 bytes per element)
//! fill that cache.

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::Measured;
use simd_softmax::Backend;

type Points = Vec<(f64, f64)>;

/// The y axis runs to this times the largest value, leaving the top third
/// for the legend.
const TOP: f64 = 1.5;

pub fn write(
    path: &str,
    op: &str,
    backend: Backend,
    elements: usize,
    measured: &[Measured],
) -> Result<(), Box<dyn std::error::Error>> {
    if measured.is_empty() {
        return Err("nothing was measured".into());
    }
    let gelem = |m: &Measured, seconds: f64| (m.rows * m.cols) as f64 / seconds / 1e9;
    let lengths = measured.iter().map(|m| m.cols as f64);
    let (x_min, x_max) = lengths.fold((f64::MAX, 0.0f64), |(a, b), c| (a.min(c), b.max(c)));
    // Ours, and the limits where they are drawn (on the batches).
    let y_max = measured
        .iter()
        .flat_map(|m| {
            let limits = is_batch(m, elements).then(|| [gelem(m, m.copy_s), gelem(m, m.exp_s)]);
            std::iter::once(m.gelem_s).chain(limits.into_iter().flatten())
        })
        .filter(|g| g.is_finite())
        .fold(0.0f64, f64::max);

    let root = SVGBackend::new(path, (1100, 650)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{op}, {backend}: Gelem/s by row length ({elements} elements per batch)"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((x_min / 1.2..x_max * 1.2).log_scale(), 0.0..y_max * TOP)?;
    chart
        .configure_mesh()
        .x_desc("row length (elements)")
        .y_desc("Gelem/s")
        .x_label_formatter(&|x| length_label(*x))
        .draw()?;

    for (level, bytes) in cache_sizes() {
        let at = bytes as f64 / 8.0;
        if at < x_min / 1.2 || at > x_max * 1.2 {
            continue;
        }
        let grey = RGBColor(150, 150, 150);
        chart.draw_series(LineSeries::new(
            [(at, 0.0), (at, y_max * TOP)],
            grey.stroke_width(1),
        ))?;
        chart.draw_series([Text::new(
            format!("{level} {}", size_label(bytes)),
            (at * 1.05, y_max * (TOP - 0.03)),
            ("sans-serif", 13).into_font().color(&grey),
        )])?;
    }

    let mut threads: Vec<usize> = measured.iter().map(|m| m.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut algorithms: Vec<&str> = measured.iter().map(|m| m.algorithm.as_str()).collect();
    algorithms.dedup();
    for (k, &t) in threads.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        let ours = |batch: bool, algorithm: &str| -> Points {
            let mut p: Points = measured
                .iter()
                .filter(|m| m.threads == t && m.algorithm == algorithm)
                .filter(|m| {
                    if batch {
                        is_batch(m, elements)
                    } else {
                        m.rows == 1
                    }
                })
                .map(|m| (m.cols as f64, m.gelem_s))
                .collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            p
        };
        for (a, algorithm) in algorithms.iter().enumerate() {
            let name = if algorithms.len() > 1 {
                format!("{t} thread(s), {algorithm}")
            } else {
                format!("{t} thread(s)")
            };
            let width = 2 + a as u32;
            chart
                .draw_series(LineSeries::new(
                    ours(true, algorithm),
                    colour.stroke_width(width),
                ))?
                .label(format!("{name}, batches"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(DashedLineSeries::new(
                    ours(false, algorithm),
                    6,
                    4,
                    colour.stroke_width(width),
                ))?
                .label(format!("{name}, one row"))
                .legend(move |(x, y)| {
                    DashedPathElement::new([(x, y), (x + 20, y)], 6, 4, colour.stroke_width(2))
                });
        }
        // The limits, measured on the batches of the first algorithm.
        let limit = |seconds: fn(&Measured) -> f64| -> Points {
            let mut p: Points = measured
                .iter()
                .filter(|m| m.threads == t && m.algorithm == algorithms[0] && is_batch(m, elements))
                .map(|m| (m.cols as f64, gelem(m, seconds(m))))
                .filter(|p| p.1.is_finite())
                .collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            p
        };
        let faint = colour.mix(0.45);
        for (what, points, marker) in [
            ("copy limit", limit(|m| m.copy_s), 0),
            ("exp limit", limit(|m| m.exp_s), 1),
        ] {
            if points.is_empty() {
                continue;
            }
            let style = faint.stroke_width(1);
            chart.draw_series(LineSeries::new(points.clone(), style))?;
            let series = if marker == 0 {
                chart.draw_series(points.iter().map(|&p| TriangleMarker::new(p, 4, style)))?
            } else {
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, style)))?
            };
            series
                .label(format!("{t} thread(s), {what} (batches)"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], faint.stroke_width(1))
                });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A batch of the sweep (about `elements` per call); a single row that long
/// is also one.
fn is_batch(m: &Measured, elements: usize) -> bool {
    m.rows > 1 || 2 * m.cols >= elements
}

/// The data caches this CPU reports: (name, bytes), from
/// /sys/devices/system/cpu/cpu0/cache (none where it is not there).
fn cache_sizes() -> Vec<(String, usize)> {
    let mut caches = Vec::new();
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |file: &str| std::fs::read_to_string(format!("{dir}/{file}")).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        if kind.trim() == "Instruction" {
            continue;
        }
        let size = size.trim();
        let bytes = match size.strip_suffix('K') {
            Some(k) => k.parse::<usize>().ok().map(|k| k << 10),
            None => match size.strip_suffix('M') {
                Some(m) => m.parse::<usize>().ok().map(|m| m << 20),
                None => size.parse().ok(),
            },
        };
        let suffix = if kind.trim() == "Data" { "d" } else { "" };
        if let Some(bytes) = bytes {
            caches.push((format!("L{}{suffix}", level.trim()), bytes));
        }
    }
    caches
}

fn length_label(x: f64) -> String {
    let x = x.round() as usize;
    if x >= 1 << 20 && x.is_multiple_of(1 << 20) {
        format!("{}Mi", x >> 20)
    } else if x >= 1 << 10 && x.is_multiple_of(1 << 10) {
        format!("{}Ki", x >> 10)
    } else {
        x.to_string()
    }
}

fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}
