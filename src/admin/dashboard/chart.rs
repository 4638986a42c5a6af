//! Server-rendered SVG charts: stacked bars over time, lines over time and horizontal stacked
//! bars. Plain SVG elements with presentation attributes (no `style` attribute, no script), so
//! the dashboard's CSP (`default-src 'none'`) leaves them alone; every text is escaped here,
//! which is why the templates may print the result unescaped. Each chart is a `role="img"`
//! with a `<title>` and a `<desc>`; the pages put the numbers in a table beside it.

use std::fmt::Write as _;

/// Chart width in SVG units (the image scales to its container).
const W: f64 = 720.0;
/// Height of the plot area.
const PLOT_H: f64 = 180.0;
/// Left margin (y-axis labels).
const LEFT: f64 = 56.0;
/// Right margin.
const RIGHT: f64 = 12.0;
/// Top margin.
const TOP: f64 = 12.0;
/// Space under the plot for x-axis labels.
const BOTTOM: f64 = 28.0;

/// Escapes text for SVG/HTML (element content and attribute values).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One named series of a chart.
#[derive(Clone, Debug)]
pub struct Series<T> {
    /// Legend text.
    pub name: String,
    /// Fill or stroke colour (`#rrggbb`).
    pub colour: &'static str,
    /// One value per x position.
    pub values: Vec<T>,
}

/// One point of a line: its value on the y axis and what its tooltip says (e.g. `> 60 s` for
/// a point drawn at 60 s).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Value in the chart's unit.
    pub value: f64,
    /// Tooltip text after the x label and the series name.
    pub text: String,
}

/// Dash patterns of the line series, in order (series are told apart by colour and dash).
const DASHES: [&str; 3] = ["", "7 4", "2 3"];

/// A "nice" axis maximum and tick step for data up to `max` (1, 2, 2.5 or 5 × 10ⁿ steps, 4
/// ticks).
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (step * 4.0, step)
}

fn number(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The frame: `<svg>`, title, description, horizontal grid lines with y labels, x labels.
fn open(out: &mut String, id: &str, title: &str, desc: &str, height: f64) {
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {height}\" role=\"img\" \
         aria-labelledby=\"{id}-t {id}-d\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        esc(title),
        esc(desc)
    );
}

fn grid(out: &mut String, axis_max: f64, step: f64, unit: &str) {
    let mut v = 0.0;
    while v <= axis_max + step / 2.0 {
        let y = TOP + PLOT_H - v / axis_max * PLOT_H;
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d4da\" \
             stroke-width=\"1\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" \
             font-size=\"11\" fill=\"#444\">{}{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            number(v),
            esc(unit)
        );
        v += step;
    }
}

/// Labels under the bars (at most 8, evenly spaced) and, at the right end of the axis, `end`
/// (the newest minute; a bar label too close to it is left out).
fn x_labels(out: &mut String, labels: &[String], slot: f64, end: &str) {
    let n = labels.len();
    if n == 0 {
        return;
    }
    let y = TOP + PLOT_H + 18.0;
    let right = W - RIGHT;
    // Room for the end label: about 7 units per character at font size 11.
    let end_w = if end.is_empty() {
        0.0
    } else {
        7.0 * end.chars().count() as f64
    };
    let every = n.div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let x = LEFT + slot * i as f64 + slot / 2.0;
        let half = 3.5 * label.chars().count() as f64;
        if !end.is_empty() && x + half + 8.0 > right - end_w {
            continue;
        }
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" font-size=\"11\" \
             fill=\"#444\">{}</text>",
            esc(label)
        );
    }
    if !end.is_empty() {
        let _ = write!(
            out,
            "<text class=\"axis-end\" x=\"{right:.1}\" y=\"{y:.1}\" text-anchor=\"end\" \
             font-size=\"11\" font-weight=\"bold\" fill=\"#222\">{}</text>",
            esc(end)
        );
    }
}

/// Stacked bars over time: one bar per x label, one colour per series (each series' values
/// line up with `labels`); `end` labels the right end of the axis.
pub fn stacked_bars(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    end: &str,
    series: &[Series<u64>],
) -> String {
    let mut out = String::new();
    let height = TOP + PLOT_H + BOTTOM;
    open(&mut out, id, title, desc, height);
    let totals: Vec<u64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0) as f64;
    let (axis_max, step) = nice_axis(max);
    grid(&mut out, axis_max, step, "");
    let slot = (W - LEFT - RIGHT) / labels.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    for (i, label) in labels.iter().enumerate() {
        let mut base = TOP + PLOT_H;
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = v as f64 / axis_max * PLOT_H;
            base -= h;
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{base:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" \
                 fill=\"{}\"><title>{} {}: {v}</title></rect>",
                s.colour,
                esc(label),
                esc(&s.name)
            );
        }
    }
    x_labels(&mut out, labels, slot, end);
    out.push_str("</svg>");
    out
}

/// Lines over time; `None` is a gap (no calls in that interval). Series `i` is dashed as
/// `DASHES[i % 3]`; each point has a tooltip with its text; `end` labels the right end of the
/// axis.
pub fn lines(
    id: &str,
    title: &str,
    desc: &str,
    labels: &[String],
    end: &str,
    series: &[Series<Option<Point>>],
    unit: &str,
) -> String {
    let mut out = String::new();
    let height = TOP + PLOT_H + BOTTOM;
    open(&mut out, id, title, desc, height);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .map(|p| p.value)
        .fold(0.0, f64::max);
    let (axis_max, step) = nice_axis(max);
    grid(&mut out, axis_max, step, unit);
    let slot = (W - LEFT - RIGHT) / labels.len().max(1) as f64;
    for (n, s) in series.iter().enumerate() {
        let dash = match DASHES.get(n % DASHES.len()) {
            Some(d) if !d.is_empty() => format!(" stroke-dasharray=\"{d}\""),
            _ => String::new(),
        };
        let mut run: Vec<(f64, f64, &str, &str)> = Vec::new();
        let mut runs: Vec<Vec<(f64, f64, &str, &str)>> = Vec::new();
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(p) => {
                    let x = LEFT + slot * i as f64 + slot / 2.0;
                    let label = labels.get(i).map_or("", String::as_str);
                    run.push((
                        x,
                        TOP + PLOT_H - p.value / axis_max * PLOT_H,
                        label,
                        &p.text,
                    ));
                }
                None => {
                    if !run.is_empty() {
                        runs.push(std::mem::take(&mut run));
                    }
                }
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        for run in runs {
            if run.len() > 1 {
                let points: Vec<String> = run
                    .iter()
                    .map(|(x, y, _, _)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = write!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
                    points.join(" "),
                    s.colour
                );
            }
            for (x, y, label, text) in run {
                let _ = write!(
                    out,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{}\"><title>{} {}: \
                     {}</title></circle>",
                    s.colour,
                    esc(label),
                    esc(&s.name),
                    esc(text)
                );
            }
        }
    }
    x_labels(&mut out, labels, slot, end);
    out.push_str("</svg>");
    out
}

/// Horizontal stacked bars: one row per label (e.g. per operation), one colour per series.
pub fn hbars(
    id: &str,
    title: &str,
    desc: &str,
    rows: &[(String, Vec<u64>)],
    series: &[(String, &'static str)],
) -> String {
    let mut out = String::new();
    let label_w = 170.0;
    let row_h = 22.0;
    let height = TOP + row_h * rows.len().max(1) as f64 + BOTTOM;
    open(&mut out, id, title, desc, height);
    let max = rows
        .iter()
        .map(|(_, v)| v.iter().sum::<u64>())
        .max()
        .unwrap_or(0) as f64;
    let (axis_max, step) = nice_axis(max);
    let plot_w = W - label_w - RIGHT;
    let bottom = TOP + row_h * rows.len().max(1) as f64;
    let mut v = 0.0;
    while v <= axis_max + step / 2.0 {
        let x = label_w + v / axis_max * plot_w;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{bottom:.1}\" stroke=\"#d0d4da\" \
             stroke-width=\"1\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
             font-size=\"11\" fill=\"#444\">{}</text>",
            bottom + 16.0,
            number(v)
        );
        v += step;
    }
    for (i, (label, values)) in rows.iter().enumerate() {
        let y = TOP + row_h * i as f64;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"12\" \
             fill=\"#222\">{}</text>",
            label_w - 6.0,
            y + row_h / 2.0 + 4.0,
            esc(label)
        );
        let mut x = label_w;
        for (v, (name, colour)) in values.iter().zip(series) {
            if *v == 0 {
                continue;
            }
            let w = *v as f64 / axis_max * plot_w;
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" \
                 fill=\"{colour}\"><title>{} {}: {v}</title></rect>",
                y + 3.0,
                row_h - 6.0,
                esc(label),
                esc(name)
            );
            x += w;
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(0.0), (1.0, 0.25));
        assert_eq!(nice_axis(7.0), (8.0, 2.0));
        assert_eq!(nice_axis(100.0), (100.0, 25.0));
        let (max, step) = nice_axis(1234.0);
        assert!(max >= 1234.0 && (step - 500.0).abs() < 1e-9);
    }

    #[test]
    fn text_is_escaped() {
        let svg = stacked_bars(
            "c",
            "<script>",
            "a & b",
            &["<x>".to_owned()],
            "<end>",
            &[Series {
                name: "\"ok\"".into(),
                colour: "#2e7d32",
                values: vec![3],
            }],
        );
        assert!(svg.contains("&lt;script&gt;") && svg.contains("a &amp; b"));
        assert!(svg.contains(">&lt;end&gt;</text>") && !svg.contains("<end>"));
        assert!(!svg.contains("<script>") && !svg.contains("<x>"));
        assert!(svg.contains("&quot;ok&quot;: 3"));
    }

    #[test]
    fn gaps_split_lines() {
        let svg = lines(
            "l",
            "t",
            "d",
            &["a".into(), "b".into(), "c".into(), "d".into()],
            "",
            &[
                Series {
                    name: "p50".into(),
                    colour: "#000000",
                    values: [Some(1.0), Some(2.0), None, Some(3.0)]
                        .map(|v| {
                            v.map(|value| Point {
                                value,
                                text: format!("{value} ms"),
                            })
                        })
                        .to_vec(),
                },
                Series {
                    name: "p99".into(),
                    colour: "#111111",
                    values: vec![
                        None,
                        Some(Point {
                            value: 60_000.0,
                            text: "> 60 s".into(),
                        }),
                        Some(Point {
                            value: 4.0,
                            text: "<4 ms>".into(),
                        }),
                        None,
                    ],
                },
            ],
            " ms",
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert_eq!(svg.matches("stroke-dasharray=\"7 4\"").count(), 1);
        assert!(svg.contains("<title>b p99: &gt; 60 s</title>"), "{svg}");
        assert!(svg.contains("c p99: &lt;4 ms&gt;") && !svg.contains("<4 ms>"));
    }

    #[test]
    fn the_axis_ends_with_its_label() {
        let labels: Vec<String> = (0..48)
            .map(|i| format!("{:02}:{:02}", i / 2, i % 2 * 30))
            .collect();
        let svg = stacked_bars("s", "t", "d", &labels, "23:41", &[]);
        // The last text of the chart is the end label, at the right end of the plot.
        let last = svg.rfind("<text").unwrap();
        assert!(
            svg[last..].starts_with(&format!("<text class=\"axis-end\" x=\"{:.1}\"", W - RIGHT)),
            "{}",
            &svg[last..]
        );
        assert!(svg[last..].contains(">23:41</text>"));
        let texts = svg.matches("text-anchor=\"middle\"").count();
        assert!((1..=8).contains(&texts), "{texts}");
        // A bar label that would run into it is left out.
        let labels: Vec<String> = (0..8).map(|i| format!("08:{i:02}")).collect();
        let svg = stacked_bars("s", "t", "d", &labels, "08:07", &[]);
        assert!(svg.contains(">08:06</text>") && svg.contains(">08:07</text>"));
        assert_eq!(svg.matches(">08:07</text>").count(), 1, "{svg}");
    }
}
