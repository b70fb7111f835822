//! SVG charts for a load-test report: one standalone document with its panels stacked vertically.
//!
//! The document is written by hand with [`std::fmt::Write`] — no plotting crate, no font library,
//! no system dependency — and opens in any browser. From the top:
//!
//! 1. **Latency over time**: x is seconds since measuring began, y the latency (one line per
//!    statistic, e.g. p50, p90, p99 and max of each second).
//! 2. **Latency by percentile**: x is on the HdrHistogram scale, `log10(1 / (1 - q))`, so the ticks
//!    0 %, 90 %, 99 %, 99.9 %, 99.99 %, 99.999 % are equally spaced; one line per run or target.
//! 3. **Throughput**, only when given: x is seconds, y messages per second.
//!
//! # Scales
//! - Time axes start at 0 (or at the earliest point, if one is negative) and end at a round value
//!   past the last point; ticks are 1, 2, 2.5 or 5 times a power of ten.
//! - Latency axes are linear from 0, in µs, ms or s chosen by the largest tick. When the panel's
//!   largest latency is more than 100 times its median (a stall next to a fast steady state, where
//!   a linear axis would flatten everything but the stall to the floor), the axis is logarithmic
//!   instead, with decade ticks each labelled in its own unit; points at or below 0 then sit on the
//!   bottom edge. The axis title says which scale was chosen.
//! - Throughput axes are linear from 0, labelled with k, M or G by magnitude.
//! - The percentile axis ends at the first tick past the last point (at least 99 %). A point whose
//!   percentile is outside `[0, 100)` has no place on this scale (100 % is at infinity) and is
//!   left out, like any point with a NaN or infinite coordinate, on every panel.
//!
//! # Finding things in the document
//! Each panel is a `<g data-panel="over-time|percentiles|throughput">` holding one
//! `<rect class="plot">` (the plot area, absolute coordinates: there are no transforms) and one
//! `<path data-series="NAME">` per series, whose `d` is `M x,y` followed by one `Lx,y` per
//! further drawn point (a lone point is `M x,y Z`, drawn as a dot) and whose `<title>` is the
//! name. Series names and the title are XML-escaped; characters XML 1.0 cannot carry at all (most
//! control characters) become U+FFFD.

use std::fmt::{self, Write};

mod axis;
mod text;

use axis::*;
use text::*;

/// One line on a chart: a name for the legend and its points.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The name shown in the legend and carried by the line's `data-series` attribute.
    pub name: String,
    /// The points `(x, y)` in the order they are joined; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
}

/// What one report draws.
#[derive(Clone, Copy, Debug)]
pub struct Charts<'a> {
    /// The document's heading, e.g. `echo ws://127.0.0.1:9001/ c=100 d=1 s=32`.
    pub title: &'a str,
    /// x: seconds since measuring began, y: latency in µs (p50, p90, p99, max per second).
    pub over_time: &'a [Series],
    /// x: percentile in `[0, 100)` (e.g. 99.9), y: latency in µs; one series per run or target.
    pub percentiles: &'a [Series],
    /// x: seconds, y: messages per second; when empty there is no throughput panel.
    pub throughput: &'a [Series],
}

/// A complete standalone SVG document (UTF-8), readable in a browser.
///
/// Never panics: empty series, single points, all-zero, NaN, infinite and huge values all give a
/// valid document (see the [module docs](self) for how each is drawn).
pub fn render(charts: &Charts<'_>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a `String` cannot fail: `fmt::Error` only comes from a failing sink.
    let _ = write_document(&mut out, charts);
    out
}

/// Width of the whole document, in user units (pixels at 100 %).
const WIDTH: f64 = 1000.0;
/// Height of the heading above the first panel.
const HEADER: f64 = 44.0;
/// Height of one panel, its title, tick labels and axis title included.
const PANEL_HEIGHT: f64 = 320.0;
/// From a panel's top to its plot area (room for the panel title).
const PANEL_TOP: f64 = 34.0;
/// From the plot area's bottom to the panel's bottom (x tick labels and the x axis title).
const PANEL_BOTTOM: f64 = 52.0;
/// Left of the plot area: y tick labels and the rotated y axis title.
const MARGIN_LEFT: f64 = 86.0;
/// Right of the plot area: the legend.
const MARGIN_RIGHT: f64 = 236.0;
/// Space below the last panel.
const FOOTER: f64 = 8.0;
/// A generous estimate of one character's width at the tick font size (11): used to keep labels
/// apart and to truncate long names, since no font metrics are at hand.
const CHAR_WIDTH: f64 = 6.8;
/// Height of one legend row.
const LEGEND_ROW: f64 = 16.0;
/// Legend names longer than this many characters are cut (the full name is in a `<title>`).
const LEGEND_CHARS: usize = 26;
/// The heading is cut past this many characters (the full title is the document's `<title>`).
const TITLE_CHARS: usize = 100;
/// The most ticks an axis draws (grid lines included), whatever the data.
const MAX_TICKS: usize = 60;

/// Ten colours that tell apart on white (the Tableau 10 palette); more series get hues spread by
/// the golden angle.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The colour of the `index`-th series of a panel: distinct for every index.
fn colour(index: usize) -> String {
    match PALETTE.get(index) {
        Some(c) => (*c).to_string(),
        None => {
            // Hue by the golden angle; lightness steps apart so that hues which land close
            // together after many turns still differ.
            let i = index - PALETTE.len();
            let hue = (i as f64 * 137.507_764_05) % 360.0;
            let light = 32 + (i % 4) * 9;
            format!("hsl({hue:.2},70%,{light}%)")
        }
    }
}

/// What a panel's x axis measures.
#[derive(Clone, Copy, PartialEq)]
enum XKind {
    /// Seconds, linear.
    Seconds,
    /// Percentiles on the HdrHistogram scale.
    Percentile,
}

/// What a panel's y axis measures.
#[derive(Clone, Copy, PartialEq)]
enum YKind {
    /// Latency in µs.
    Latency,
    /// Messages per second.
    Rate,
}

/// One panel to draw.
struct Panel<'a> {
    /// The `data-panel` attribute and the clip path's id.
    id: &'static str,
    /// The heading over the plot.
    title: &'static str,
    /// What x measures.
    x: XKind,
    /// What y measures.
    y: YKind,
    /// The lines.
    series: &'a [Series],
}

fn write_document(out: &mut String, charts: &Charts<'_>) -> fmt::Result {
    let mut panels = vec![
        Panel {
            id: "over-time",
            title: "Latency over time",
            x: XKind::Seconds,
            y: YKind::Latency,
            series: charts.over_time,
        },
        Panel {
            id: "percentiles",
            title: "Latency by percentile",
            x: XKind::Percentile,
            y: YKind::Latency,
            series: charts.percentiles,
        },
    ];
    if !charts.throughput.is_empty() {
        panels.push(Panel {
            id: "throughput",
            title: "Throughput",
            x: XKind::Seconds,
            y: YKind::Rate,
            series: charts.throughput,
        });
    }
    let height = HEADER + PANEL_HEIGHT * panels.len() as f64 + FOOTER;
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">"#
    )?;
    writeln!(out, "<title>{}</title>", text(charts.title))?;
    writeln!(
        out,
        r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    )?;
    writeln!(
        out,
        r##"<text x="16" y="28" font-size="16" font-weight="bold" fill="#222222">{}</text>"##,
        text(&truncate(charts.title, TITLE_CHARS))
    )?;
    for (i, panel) in panels.iter().enumerate() {
        write_panel(out, panel, HEADER + PANEL_HEIGHT * i as f64)?;
    }
    writeln!(out, "</svg>")
}

/// The plot area of a panel, in absolute user units.
#[derive(Clone, Copy)]
struct Area {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Area {
    fn width(&self) -> f64 {
        self.right - self.left
    }
    fn height(&self) -> f64 {
        self.bottom - self.top
    }
    /// The point at fractions `(fx, fy)` of the axes (0 at the left / bottom).
    fn at(&self, fx: f64, fy: f64) -> (f64, f64) {
        (
            self.left + fx * self.width(),
            self.bottom - fy * self.height(),
        )
    }
}

fn write_panel(out: &mut String, panel: &Panel<'_>, top: f64) -> fmt::Result {
    let area = Area {
        left: MARGIN_LEFT,
        top: top + PANEL_TOP,
        right: WIDTH - MARGIN_RIGHT,
        bottom: top + PANEL_HEIGHT - PANEL_BOTTOM,
    };
    // Points as drawn: the x of a percentile is already on the log scale.
    let drawn: Vec<Vec<(f64, f64)>> = panel
        .series
        .iter()
        .map(|s| drawable(&s.points, panel.x))
        .collect();
    let xs = drawn.iter().flatten().map(|p| p.0);
    let ys = drawn.iter().flatten().map(|p| p.1);
    let x_axis = match panel.x {
        XKind::Seconds => {
            let (lo, hi) = bounds(xs);
            Axis::Linear(Linear::nice(lo.min(0.0), hi.max(0.0)))
        }
        XKind::Percentile => {
            let hi = xs.fold(0.0f64, f64::max);
            // At least up to 99 %; 99.9 % computes as 2.9999999999999996 and must end at 3, and
            // a rounding the other way must not add an empty decade.
            Axis::Percentile(((hi - 1e-9).ceil() as i32).clamp(2, 17))
        }
    };
    let y_axis = match panel.y {
        YKind::Latency => latency_axis(ys.collect()),
        YKind::Rate => {
            let (lo, hi) = bounds(ys);
            Axis::Linear(Linear::nice(lo.min(0.0), hi.max(0.0)))
        }
    };

    writeln!(out, r#"<g data-panel="{}">"#, panel.id)?;
    writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" font-size="13" font-weight="bold" fill="#222222">{}</text>"##,
        area.left,
        top + 22.0,
        panel.title
    )?;
    writeln!(
        out,
        r##"<rect class="plot" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#fbfbfb" stroke="#888888"/>"##,
        area.left,
        area.top,
        area.width(),
        area.height()
    )?;
    write_x_ticks(out, &area, &x_axis, panel)?;
    write_y_ticks(out, &area, &y_axis, panel)?;

    // The lines, clipped a little outside the plot so a line or a dot on an edge stays whole.
    writeln!(
        out,
        r#"<clipPath id="clip-{}"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/></clipPath>"#,
        panel.id,
        area.left - 4.0,
        area.top - 4.0,
        area.width() + 8.0,
        area.height() + 8.0
    )?;
    writeln!(
        out,
        r#"<g clip-path="url(#clip-{})" fill="none" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round">"#,
        panel.id
    )?;
    for (i, (series, points)) in panel.series.iter().zip(&drawn).enumerate() {
        write!(
            out,
            r#"<path data-series="{}" stroke="{}" d=""#,
            attr(&series.name),
            colour(i)
        )?;
        for (j, &(x, y)) in points.iter().enumerate() {
            let (px, py) = area.at(x_axis.frac(x), y_axis.frac(y));
            let cmd = if j == 0 { "M" } else { "L" };
            write!(out, "{cmd}{px:.1},{py:.1}")?;
        }
        if points.len() == 1 {
            // A zero-length closed subpath: with round caps and a wider stroke, a dot.
            out.push_str(r#"Z" stroke-width="6"#);
        }
        writeln!(out, r#""><title>{}</title></path>"#, text(&series.name))?;
    }
    writeln!(out, "</g>")?;
    if drawn.iter().all(Vec::is_empty) {
        let (cx, cy) = area.at(0.5, 0.5);
        writeln!(
            out,
            r##"<text x="{cx:.1}" y="{cy:.1}" text-anchor="middle" font-size="14" fill="#999999">no data</text>"##
        )?;
    }
    write_legend(out, &area, panel.series, &drawn)?;
    writeln!(out, "</g>")
}

/// The points of a series that can be drawn, with percentiles moved onto their log scale.
fn drawable(points: &[(f64, f64)], x: XKind) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter_map(|&(px, py)| {
            let px = match x {
                XKind::Seconds => px,
                XKind::Percentile => percentile_position(px)?,
            };
            (px.is_finite() && py.is_finite()).then_some((px, py))
        })
        .collect()
}

fn write_x_ticks(out: &mut String, area: &Area, axis: &Axis, panel: &Panel<'_>) -> fmt::Result {
    let quantity = match panel.x {
        XKind::Seconds => Quantity::Seconds,
        XKind::Percentile => Quantity::Percentile,
    };
    let (ticks, title) = ticks(axis, quantity);
    // Every `stride`-th tick is labelled, the smallest stride whose labels keep 6 units apart.
    let spans: Vec<(f64, f64)> = ticks
        .iter()
        .map(|t| {
            let (x, _) = area.at(t.frac, 0.0);
            let half = label_width(&t.label) / 2.0;
            (x - half, x + half)
        })
        .collect();
    let stride = label_stride(spans.len(), |a, b| spans[b].0 - spans[a].1 >= 6.0);
    for (i, tick) in ticks.iter().enumerate() {
        let (x, _) = area.at(tick.frac, 0.0);
        writeln!(
            out,
            r##"<line class="grid" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e4e4e4"/><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#888888"/>"##,
            area.top,
            area.bottom,
            area.bottom,
            area.bottom + 4.0
        )?;
        if i % stride == 0 {
            writeln!(
                out,
                r##"<text class="tick x" x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#444444">{}</text>"##,
                area.bottom + 16.0,
                text(&tick.label)
            )?;
        }
    }
    writeln!(
        out,
        r##"<text class="axis-title x" x="{:.1}" y="{:.1}" text-anchor="middle" fill="#222222">{}</text>"##,
        area.left + area.width() / 2.0,
        area.bottom + 38.0,
        text(&title)
    )
}

fn write_y_ticks(out: &mut String, area: &Area, axis: &Axis, panel: &Panel<'_>) -> fmt::Result {
    let quantity = match panel.y {
        YKind::Latency => Quantity::Latency,
        YKind::Rate => Quantity::Rate,
    };
    let (ticks, title) = ticks(axis, quantity);
    // Every `stride`-th tick is labelled, the smallest stride whose labels keep 14 units apart.
    let ys: Vec<f64> = ticks.iter().map(|t| area.at(0.0, t.frac).1).collect();
    let stride = label_stride(ys.len(), |a, b| ys[a] - ys[b] >= 14.0);
    for (i, tick) in ticks.iter().enumerate() {
        let (_, y) = area.at(0.0, tick.frac);
        writeln!(
            out,
            r##"<line class="grid" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#888888"/>"##,
            area.left,
            area.right,
            area.left - 4.0,
            area.left
        )?;
        if i % stride == 0 {
            writeln!(
                out,
                r##"<text class="tick y" x="{:.1}" y="{:.1}" text-anchor="end" fill="#444444">{}</text>"##,
                area.left - 7.0,
                y + 4.0,
                text(&tick.label)
            )?;
        }
    }
    let (cx, cy) = (18.0, area.top + area.height() / 2.0);
    writeln!(
        out,
        r##"<text class="axis-title y" x="{cx:.1}" y="{cy:.1}" transform="rotate(-90 {cx:.1} {cy:.1})" text-anchor="middle" fill="#222222">{}</text>"##,
        text(&title)
    )
}

fn write_legend(
    out: &mut String,
    area: &Area,
    series: &[Series],
    drawn: &[Vec<(f64, f64)>],
) -> fmt::Result {
    if series.is_empty() {
        return Ok(());
    }
    let x = area.right + 14.0;
    let rows = ((area.height() - 4.0) / LEGEND_ROW).floor().max(1.0) as usize;
    let shown = if series.len() > rows {
        rows - 1
    } else {
        series.len()
    };
    writeln!(out, r#"<g class="legend">"#)?;
    for (i, (s, points)) in series.iter().zip(drawn).take(shown).enumerate() {
        let y = area.top + 10.0 + LEGEND_ROW * i as f64;
        let mut name = s.name.clone();
        if points.is_empty() {
            name.push_str(" (no data)");
        }
        let short = truncate(&name, LEGEND_CHARS);
        writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="3" stroke-linecap="round"/><text x="{:.1}" y="{:.1}" fill="#222222"><title>{}</title>{}</text>"##,
            x + 20.0,
            colour(i),
            x + 27.0,
            y + 4.0,
            text(&name),
            text(&short)
        )?;
    }
    if shown < series.len() {
        let y = area.top + 10.0 + LEGEND_ROW * shown as f64;
        writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" fill="#666666">+{} more</text>"##,
            x + 27.0,
            y + 4.0,
            series.len() - shown
        )?;
    }
    writeln!(out, "</g>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: &[(f64, f64)]) -> Series {
        Series {
            name: name.to_string(),
            points: points.to_vec(),
        }
    }

    fn parse(doc: &str) -> roxmltree::Document<'_> {
        match roxmltree::Document::parse(doc) {
            Ok(d) => d,
            Err(e) => panic!("not valid XML: {e}\n{doc}"),
        }
    }

    fn panel<'a, 'i>(doc: &'a roxmltree::Document<'i>, id: &str) -> roxmltree::Node<'a, 'i> {
        doc.descendants()
            .find(|n| n.attribute("data-panel") == Some(id))
            .unwrap_or_else(|| panic!("no panel {id}"))
    }

    fn paths<'a, 'i>(panel: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
        panel
            .descendants()
            .filter(|n| n.has_tag_name("path") && n.attribute("data-series").is_some())
            .collect()
    }

    fn path<'a, 'i>(panel: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
        let found: Vec<_> = paths(panel)
            .into_iter()
            .filter(|n| n.attribute("data-series") == Some(name))
            .collect();
        assert_eq!(found.len(), 1, "one path for series {name:?}");
        found[0]
    }

    /// The points of a path's `d` (`M x,y` then `Lx,y`…, optionally closed by `Z`).
    fn points(path: roxmltree::Node<'_, '_>) -> Vec<(f64, f64)> {
        let d = path.attribute("d").expect("a d attribute");
        let d = d.strip_suffix('Z').unwrap_or(d);
        if d.is_empty() {
            return Vec::new();
        }
        let body = d.strip_prefix('M').expect("d starts with M");
        body.split('L')
            .map(|pair| {
                let (x, y) = pair.split_once(',').expect("x,y");
                let x: f64 = x.trim().parse().expect("x is a number");
                let y: f64 = y.trim().parse().expect("y is a number");
                assert!(x.is_finite() && y.is_finite(), "finite coordinates in {d}");
                (x, y)
            })
            .collect()
    }

    fn plot_rect(panel: roxmltree::Node<'_, '_>) -> (f64, f64, f64, f64) {
        let r = panel
            .descendants()
            .find(|n| n.has_tag_name("rect") && n.attribute("class") == Some("plot"))
            .expect("a plot rect");
        let num = |a: &str| -> f64 { r.attribute(a).expect(a).parse().expect(a) };
        (num("x"), num("y"), num("width"), num("height"))
    }

    fn title_of(path: roxmltree::Node<'_, '_>) -> String {
        path.children()
            .find(|n| n.has_tag_name("title"))
            .and_then(|t| t.text())
            .unwrap_or_default()
            .to_string()
    }

    fn texts(panel: roxmltree::Node<'_, '_>, class: &str) -> Vec<(f64, f64, String)> {
        panel
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("class") == Some(class))
            .map(|n| {
                let x: f64 = n.attribute("x").unwrap().parse().unwrap();
                let y: f64 = n.attribute("y").unwrap().parse().unwrap();
                (x, y, n.text().unwrap_or_default().to_string())
            })
            .collect()
    }

    /// Asserts the chart's structure for these inputs: a root `<svg>` with a viewBox, one path per
    /// series holding its drawable points, all inside the plot area.
    fn check(charts: &Charts<'_>) -> String {
        let doc = render(charts);
        let parsed = parse(&doc);
        let root = parsed.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        let view_box: Vec<f64> = root
            .attribute("viewBox")
            .expect("a viewBox")
            .split_whitespace()
            .map(|v| v.parse().expect("a number in viewBox"))
            .collect();
        assert_eq!(view_box.len(), 4);
        assert!(view_box[2] > 0.0 && view_box[3] > 0.0, "{view_box:?}");
        let panels: [(&str, &[Series], bool); 3] = [
            ("over-time", charts.over_time, false),
            ("percentiles", charts.percentiles, true),
            ("throughput", charts.throughput, false),
        ];
        for (id, list, percentile) in panels {
            if list.is_empty() && id == "throughput" {
                assert!(
                    !parsed
                        .descendants()
                        .any(|n| n.attribute("data-panel") == Some(id)),
                    "no throughput panel when none is given"
                );
                continue;
            }
            let p = panel(&parsed, id);
            assert_eq!(paths(p).len(), list.len(), "one path per series in {id}");
            let (x, y, w, h) = plot_rect(p);
            for s in list {
                let expected = s
                    .points
                    .iter()
                    .filter(|&&(px, py)| {
                        px.is_finite()
                            && py.is_finite()
                            && (!percentile || ((0.0..100.0).contains(&px) && px / 100.0 < 1.0))
                    })
                    .count();
                let node = path(p, &s.name);
                assert_eq!(title_of(node), s.name, "the path's title is its name");
                let pts = points(node);
                assert_eq!(pts.len(), expected, "points of {:?} in {id}", s.name);
                for (px, py) in pts {
                    assert!(
                        px >= x - 0.05
                            && px <= x + w + 0.05
                            && py >= y - 0.05
                            && py <= y + h + 0.05,
                        "({px}, {py}) outside the plot of {id}"
                    );
                }
            }
        }
        doc
    }

    fn per_second(f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..10)
            .map(|s| (f64::from(s) + 1.0, f(f64::from(s))))
            .collect()
    }

    fn sample() -> (Vec<Series>, Vec<Series>, Vec<Series>) {
        let over_time = vec![
            series("p50", &per_second(|s| 180.0 + 3.0 * s)),
            series("p90", &per_second(|s| 260.0 + 4.0 * s)),
            series("p99", &per_second(|s| 410.0 + 9.0 * s)),
            series("max", &per_second(|s| 900.0 + 60.0 * s)),
        ];
        let qs = [0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 99.999];
        let percentiles = vec![
            series(
                "wsx",
                &qs.iter()
                    .enumerate()
                    .map(|(i, &q)| (q, 150.0 + 40.0 * i as f64))
                    .collect::<Vec<_>>(),
            ),
            series(
                "node ws",
                &qs.iter()
                    .enumerate()
                    .map(|(i, &q)| (q, 300.0 + 90.0 * i as f64))
                    .collect::<Vec<_>>(),
            ),
        ];
        let throughput = vec![series("msgs/s", &per_second(|s| 95_000.0 + 500.0 * s))];
        (over_time, percentiles, throughput)
    }

    #[test]
    fn a_report_has_every_series_with_its_points() {
        let (over_time, percentiles, throughput) = sample();
        let doc = check(&Charts {
            title: "echo ws://127.0.0.1:9001/ c=100 d=1 s=32",
            over_time: &over_time,
            percentiles: &percentiles,
            throughput: &throughput,
        });
        let parsed = parse(&doc);
        // Stacked top to bottom in this order.
        let tops: Vec<f64> = ["over-time", "percentiles", "throughput"]
            .iter()
            .map(|id| plot_rect(panel(&parsed, id)).1)
            .collect();
        assert!(tops[0] < tops[1] && tops[1] < tops[2], "{tops:?}");
        assert_eq!(
            parsed
                .root_element()
                .children()
                .find(|n| n.has_tag_name("title"))
                .and_then(|n| n.text()),
            Some("echo ws://127.0.0.1:9001/ c=100 d=1 s=32")
        );
    }

    #[test]
    fn no_throughput_panel_when_none_is_given() {
        let (over_time, percentiles, _) = sample();
        check(&Charts {
            title: "t",
            over_time: &over_time,
            percentiles: &percentiles,
            throughput: &[],
        });
    }

    #[test]
    fn series_of_a_panel_have_distinct_colours() {
        let many: Vec<Series> = (0..40)
            .map(|i| series(&format!("run {i}"), &[(1.0, f64::from(i)), (2.0, 1.0)]))
            .collect();
        let doc = check(&Charts {
            title: "many",
            over_time: &many,
            percentiles: &many,
            throughput: &many,
        });
        let parsed = parse(&doc);
        for id in ["over-time", "percentiles", "throughput"] {
            let strokes: Vec<&str> = paths(panel(&parsed, id))
                .iter()
                .map(|p| p.attribute("stroke").expect("a stroke"))
                .collect();
            let mut unique = strokes.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), strokes.len(), "colours in {id}: {strokes:?}");
        }
        // Forty names do not fit the legend: the rest are counted.
        assert!(
            doc.contains(" more</text>"),
            "the legend says how many it left out"
        );
    }

    #[test]
    fn names_and_title_are_escaped() {
        let awkward = "a<b&c>\"d' e\tf\ng\r";
        let over_time = vec![series(awkward, &[(0.0, 1.0), (1.0, 2.0)])];
        let percentiles = vec![series("<&\">", &[(50.0, 1.0)])];
        let doc = check(&Charts {
            title: "<title>&\"quoted\"</title>",
            over_time: &over_time,
            percentiles: &percentiles,
            throughput: &[],
        });
        let parsed = parse(&doc);
        assert_eq!(
            parsed
                .root_element()
                .children()
                .find(|n| n.has_tag_name("title"))
                .and_then(|n| n.text()),
            Some("<title>&\"quoted\"</title>")
        );
        assert!(
            !doc.contains("a<b"),
            "a raw < from a name reached the document"
        );
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced() {
        let over_time = vec![series("nul\u{0} bell\u{7} \u{ffff}", &[(0.0, 1.0)])];
        let doc = render(&Charts {
            title: "esc\u{1b}[0m",
            over_time: &over_time,
            percentiles: &[],
            throughput: &[],
        });
        let parsed = parse(&doc);
        let p = panel(&parsed, "over-time");
        assert_eq!(
            paths(p)[0].attribute("data-series"),
            Some("nul\u{fffd} bell\u{fffd} \u{fffd}")
        );
    }

    #[test]
    fn edge_cases_give_valid_documents() {
        let nan = f64::NAN;
        let inf = f64::INFINITY;
        let cases: Vec<Vec<Series>> = vec![
            vec![],
            vec![series("empty", &[])],
            vec![series("one", &[(3.0, 250.0)])],
            vec![series("zero", &[(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)])],
            vec![series("same x", &[(5.0, 1.0), (5.0, 2.0)])],
            vec![series(
                "non-finite",
                &[
                    (nan, 1.0),
                    (1.0, nan),
                    (inf, 2.0),
                    (2.0, -inf),
                    (3.0, 4.0),
                    (4.0, 5.0),
                ],
            )],
            vec![series("only nan", &[(nan, nan), (inf, inf)])],
            vec![series(
                "huge",
                &[(0.0, f64::MAX), (1.0, 1.0), (f64::MAX, 2.0)],
            )],
            vec![series(
                "huge negative",
                &[(-f64::MAX, -f64::MAX), (f64::MAX, f64::MAX)],
            )],
            vec![series("tiny", &[(0.0, 5e-324), (1e-320, 1e-310)])],
            vec![series("negative", &[(-3.0, -10.0), (2.0, 20.0)])],
            vec![series("big", &[(1e12, 1e15), (2e12, 3e15)])],
            vec![
                series(
                    "percentiles out of range",
                    &[(-1.0, 5.0), (100.0, 9.0), (100.5, 1.0)],
                ),
                series(
                    "close to 100",
                    &[(99.999_999_999_999_99, 7.0), (99.999_999_999, 6.0)],
                ),
            ],
        ];
        for case in &cases {
            let doc = check(&Charts {
                title: "",
                over_time: case,
                percentiles: case,
                throughput: case,
            });
            let parsed = parse(&doc);
            for id in ["over-time", "percentiles"] {
                for (_, _, label) in texts(panel(&parsed, id), "tick x")
                    .into_iter()
                    .chain(texts(panel(&parsed, id), "tick y"))
                {
                    assert!(
                        !label.contains("NaN") && !label.contains("inf") && !label.is_empty(),
                        "tick label {label:?} for {case:?}"
                    );
                }
            }
            let empty = case.iter().all(|s| {
                s.points
                    .iter()
                    .all(|&(x, y)| !(x.is_finite() && y.is_finite()))
            });
            let over_time = panel(&parsed, "over-time");
            let says_no_data = over_time
                .descendants()
                .any(|n| n.has_tag_name("text") && n.text() == Some("no data"));
            assert_eq!(says_no_data, empty, "{case:?}");
        }
    }

    #[test]
    fn points_sit_at_their_values() {
        let line = vec![series("p50", &[(0.0, 0.0), (5.0, 250.0), (10.0, 500.0)])];
        let doc = check(&Charts {
            title: "",
            over_time: &line,
            percentiles: &[],
            throughput: &line,
        });
        let parsed = parse(&doc);
        for id in ["over-time", "throughput"] {
            let p = panel(&parsed, id);
            let (x, y, w, h) = plot_rect(p);
            let pts = points_of(p, "p50");
            let expected = [(x, y + h), (x + w / 2.0, y + h / 2.0), (x + w, y)];
            for (got, want) in pts.iter().zip(expected) {
                assert!(
                    (got.0 - want.0).abs() < 0.11 && (got.1 - want.1).abs() < 0.11,
                    "{got:?} should be at {want:?} in {id}"
                );
            }
        }
    }

    #[test]
    fn label_stride_is_the_smallest_that_fits() {
        // Ticks 10 apart, labels 25 wide: every third label fits (30 apart), not every second.
        let centres: Vec<f64> = (0..10).map(|i| f64::from(i) * 10.0).collect();
        let stride = label_stride(centres.len(), |a, b| centres[b] - centres[a] >= 25.0);
        assert_eq!(stride, 3);
        assert_eq!(label_stride(4, |_, _| true), 1);
        assert_eq!(label_stride(4, |_, _| false), 4);
        assert_eq!(label_stride(0, |_, _| false), 1);
    }

    #[test]
    fn a_lone_point_is_a_dot() {
        let one = vec![series("one", &[(3.0, 250.0)])];
        let doc = render(&Charts {
            title: "",
            over_time: &one,
            percentiles: &[],
            throughput: &[],
        });
        let parsed = parse(&doc);
        let d = path(panel(&parsed, "over-time"), "one")
            .attribute("d")
            .unwrap()
            .to_string();
        assert!(
            d.starts_with('M') && d.ends_with('Z') && !d.contains('L'),
            "{d}"
        );
    }

    #[test]
    fn percentiles_sit_on_the_hdr_scale() {
        let run = vec![series(
            "run",
            &[
                (0.0, 10.0),
                (90.0, 20.0),
                (99.0, 30.0),
                (99.9, 40.0),
                (99.99, 50.0),
                (99.999, 60.0),
            ],
        )];
        let doc = check(&Charts {
            title: "",
            over_time: &[],
            percentiles: &run,
            throughput: &[],
        });
        let parsed = parse(&doc);
        let p = panel(&parsed, "percentiles");
        let labels = texts(p, "tick x");
        let names: Vec<&str> = labels.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(names, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        let pts = points(path(p, "run"));
        // Every point is exactly under its tick, and the ticks are evenly spaced.
        for ((px, _), (lx, _, label)) in pts.iter().zip(&labels) {
            assert!((px - lx).abs() < 0.11, "{label} at {lx}, its point at {px}");
        }
        let gaps: Vec<f64> = labels.windows(2).map(|w| w[1].0 - w[0].0).collect();
        for g in &gaps {
            assert!((g - gaps[0]).abs() < 0.2, "uneven ticks {gaps:?}");
        }
        // Linear y from 0: 10 µs sits above the bottom, 60 µs below the top.
        let (_, y, _, h) = plot_rect(p);
        assert!(pts[0].1 < y + h && pts[5].1 >= y, "{pts:?}");
    }

    /// The y axis title and tick labels of a panel showing latencies up to `max` µs.
    fn latency_axis_for(max: f64) -> (String, Vec<String>) {
        let s = vec![series(
            "p",
            &[(0.0, max / 4.0), (1.0, max / 2.0), (2.0, max)],
        )];
        let doc = check(&Charts {
            title: "",
            over_time: &s,
            percentiles: &[],
            throughput: &[],
        });
        let parsed = parse(&doc);
        let p = panel(&parsed, "over-time");
        let title = p
            .descendants()
            .find(|n| n.attribute("class") == Some("axis-title y"))
            .and_then(|n| n.text())
            .unwrap()
            .to_string();
        (title, texts(p, "tick y").into_iter().map(|t| t.2).collect())
    }

    #[test]
    fn latency_units_follow_the_magnitude_and_ticks_are_round() {
        for (max, unit, top) in [
            (480.0, "latency (µs)", 500.0),
            (4_300.0, "latency (ms)", 5.0),
            (2_600_000.0, "latency (s)", 3.0),
            (0.7, "latency (µs)", 0.8),
        ] {
            let (title, labels) = latency_axis_for(max);
            assert_eq!(title, unit, "for {max}");
            let values: Vec<f64> = labels
                .iter()
                .map(|l| l.parse().expect("a plain number"))
                .collect();
            assert_eq!(values[0], 0.0, "from 0: {labels:?}");
            assert_eq!(
                *values.last().unwrap(),
                top,
                "ends on a round tick: {labels:?}"
            );
            let step = values[1] - values[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 2.5, 5.0]
                    .iter()
                    .any(|m| (mantissa - m).abs() < 1e-9),
                "round step {step} in {labels:?}"
            );
            for w in values.windows(2) {
                assert!(
                    ((w[1] - w[0]) - step).abs() < step * 1e-6,
                    "even steps {labels:?}"
                );
            }
        }
    }

    #[test]
    fn a_stall_far_above_the_median_gets_a_log_axis() {
        let mut points: Vec<(f64, f64)> = (0..50).map(|i| (f64::from(i), 100.0)).collect();
        points.push((50.0, 2_000_000.0));
        let s = vec![series("max", &points)];
        let doc = check(&Charts {
            title: "",
            over_time: &s,
            percentiles: &[],
            throughput: &[],
        });
        let parsed = parse(&doc);
        let p = panel(&parsed, "over-time");
        let title = p
            .descendants()
            .find(|n| n.attribute("class") == Some("axis-title y"))
            .and_then(|n| n.text());
        assert_eq!(title, Some("latency (log scale)"));
        let labels: Vec<String> = texts(p, "tick y").into_iter().map(|t| t.2).collect();
        assert!(
            labels.contains(&"100 µs".to_string()) && labels.contains(&"1 s".to_string()),
            "{labels:?}"
        );
        // 100 µs is drawn at the 100 µs tick.
        let tick = texts(p, "tick y")
            .into_iter()
            .find(|t| t.2 == "100 µs")
            .unwrap();
        let first = points_of(p, "max")[0];
        assert!(
            (first.1 - (tick.1 - 4.0)).abs() < 0.11,
            "{first:?} vs tick at {}",
            tick.1
        );
        // Just under 100 times stays linear.
        let (title, _) = latency_axis_for(99.0);
        assert_eq!(title, "latency (µs)");
    }

    fn points_of(panel: roxmltree::Node<'_, '_>, name: &str) -> Vec<(f64, f64)> {
        points(path(panel, name))
    }

    #[test]
    fn throughput_is_labelled_by_magnitude() {
        let s = vec![series("msgs/s", &[(0.0, 1.2e6), (1.0, 2.4e6)])];
        let doc = check(&Charts {
            title: "",
            over_time: &[],
            percentiles: &[],
            throughput: &s,
        });
        let parsed = parse(&doc);
        let p = panel(&parsed, "throughput");
        let title = p
            .descendants()
            .find(|n| n.attribute("class") == Some("axis-title y"))
            .and_then(|n| n.text());
        assert_eq!(title, Some("messages/s (millions)"));
        let labels: Vec<String> = texts(p, "tick y").into_iter().map(|t| t.2).collect();
        assert_eq!(labels.last().map(String::as_str), Some("2.5"), "{labels:?}");
    }

    #[test]
    fn tick_labels_do_not_overlap() {
        // A long time axis with long labels and a percentile axis out to 99.99999999999 %.
        let over_time = vec![series("p50", &[(0.0, 1.0), (123_456.7, 2.0)])];
        let percentiles = vec![series("run", &[(0.0, 1.0), (99.999_999_999_99, 2.0)])];
        let doc = check(&Charts {
            title: "",
            over_time: &over_time,
            percentiles: &percentiles,
            throughput: &[],
        });
        let parsed = parse(&doc);
        for id in ["over-time", "percentiles"] {
            let p = panel(&parsed, id);
            let labels = texts(p, "tick x");
            assert!(labels.len() >= 3, "{labels:?}");
            for w in labels.windows(2) {
                let right = w[0].0 + label_width(&w[0].2) / 2.0;
                let left = w[1].0 - label_width(&w[1].2) / 2.0;
                assert!(left > right, "{:?} runs into {:?}", w[0], w[1]);
            }
            let ys = texts(p, "tick y");
            for w in ys.windows(2) {
                assert!(w[0].1 - w[1].1 >= 12.0, "{:?} runs into {:?}", w[0], w[1]);
            }
        }
    }

    /// Writes a realistic report to `target/svg-demo.svg`, to look at in a browser.
    #[test]
    fn demo_document() {
        let (over_time, percentiles, throughput) = sample();
        let mut with_stall = over_time.clone();
        with_stall[3].points[6].1 = 48_000.0;
        let doc = check(&Charts {
            title: "echo ws://127.0.0.1:9001/ c=100 d=1 s=32 (a 48 ms stall at 7 s)",
            over_time: &with_stall,
            percentiles: &percentiles,
            throughput: &throughput,
        });
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        std::fs::create_dir_all(&target).expect("the target directory");
        let file = target.join("svg-demo.svg");
        std::fs::write(&file, &doc).expect("write the demo");
        let back = std::fs::read_to_string(&file).expect("read the demo back");
        assert_eq!(back, doc);
    }
}
