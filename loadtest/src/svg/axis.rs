//! The axes of a chart: linear and logarithmic scales, the HdrHistogram percentile scale,
//! round tick values and their labels.

use super::{CHAR_WIDTH, MAX_TICKS};

/// Where percentile `q` (in %) sits on the HdrHistogram scale: `log10(1 / (1 - q / 100))`, so 90 %
/// is at 1, 99 % at 2, 99.9 % at 3. `None` outside `[0, 100)` or when `1 - q / 100` rounds to 0.
pub(super) fn percentile_position(q: f64) -> Option<f64> {
    if !(0.0..100.0).contains(&q) {
        return None;
    }
    let rest = 1.0 - q / 100.0;
    let pos = -rest.log10();
    (rest > 0.0 && pos.is_finite()).then_some(pos.max(0.0))
}

/// Smallest and largest of the values; `(0, 0)` when there are none.
pub(super) fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
        .unwrap_or((0.0, 0.0))
}

/// A latency axis for these values: linear from 0, or logarithmic when the largest is more than
/// 100 times the median.
pub(super) fn latency_axis(mut values: Vec<f64>) -> Axis {
    values.sort_by(f64::total_cmp);
    let (lo, hi) = bounds(values.iter().copied());
    let median = values.get(values.len() / 2).copied().unwrap_or(0.0);
    if median > 0.0 && hi / median > 100.0 {
        let min_positive = values.iter().copied().find(|&v| v > 0.0).unwrap_or(median);
        let lo_e = min_positive.log10().floor() as i32;
        let hi_e = (hi.log10().ceil() as i32).max(lo_e + 1);
        return Axis::Log { lo: lo_e, hi: hi_e };
    }
    Axis::Linear(Linear::nice(lo.min(0.0), hi.max(0.0)))
}

/// A linear axis from `lo` to `hi` with a tick every `step`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Linear {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) step: f64,
}

impl Linear {
    /// Round ends and a round step (1, 2, 2.5 or 5 times a power of ten, about 5 steps) around
    /// `lo..=hi`; falls back to the raw ends when rounding would leave the finite range.
    pub(super) fn nice(lo: f64, hi: f64) -> Self {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            // One value (or none): a unit-wide range, or one its own size.
            (lo, lo + lo.abs().max(1.0))
        };
        // Halves keep `hi - lo` finite even from -MAX to MAX.
        let raw = (hi * 0.5 - lo * 0.5) * 0.4;
        let magnitude = 10f64.powi(raw.log10().floor() as i32);
        let step = match raw / magnitude {
            n if n <= 1.0 => magnitude,
            n if n <= 2.0 => 2.0 * magnitude,
            n if n <= 2.5 => 2.5 * magnitude,
            n if n <= 5.0 => 5.0 * magnitude,
            _ => 10.0 * magnitude,
        };
        let nice = Linear {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            step,
        };
        if step.is_normal() && nice.lo.is_finite() && nice.hi.is_finite() && nice.hi > nice.lo {
            nice
        } else if raw.is_normal() {
            Linear { lo, hi, step: raw }
        } else {
            // Subnormal spans: draw them on a unit range rather than divide by (almost) zero.
            Linear {
                lo,
                hi: lo + 1.0,
                step: 0.2,
            }
        }
    }

    /// Where `v` sits between the ends, 0 to 1.
    pub(super) fn frac(&self, v: f64) -> f64 {
        let span = self.hi * 0.5 - self.lo * 0.5;
        if span > 0.0 {
            ((v * 0.5 - self.lo * 0.5) / span).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// The tick values from `lo` to `hi`.
    pub(super) fn ticks(&self) -> Vec<f64> {
        let count = ((self.hi * 0.5 - self.lo * 0.5) / (self.step * 0.5)).round();
        let count = if count.is_finite() && count >= 1.0 {
            (count as usize).min(MAX_TICKS)
        } else {
            1
        };
        (0..=count)
            .map(|i| {
                if i == count {
                    self.hi
                } else {
                    (2.0 * (self.lo * 0.5 + i as f64 * (self.step * 0.5))).min(self.hi)
                }
            })
            .collect()
    }
}

/// One axis's scale.
#[derive(Clone, Copy, Debug)]
pub(super) enum Axis {
    /// Linear.
    Linear(Linear),
    /// Logarithmic from `10^lo` to `10^hi`.
    Log { lo: i32, hi: i32 },
    /// The HdrHistogram percentile scale from 0 % to `1 - 10^-top`.
    Percentile(i32),
}

impl Axis {
    /// Where `v` (already on the percentile scale, for a percentile axis) sits, 0 to 1.
    pub(super) fn frac(&self, v: f64) -> f64 {
        match *self {
            Axis::Linear(l) => l.frac(v),
            Axis::Log { lo, hi } => {
                if v > 0.0 {
                    ((v.log10() - f64::from(lo)) / f64::from(hi - lo)).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
            Axis::Percentile(top) => (v / f64::from(top.max(1))).clamp(0.0, 1.0),
        }
    }
}

/// A tick: where it sits (0 to 1) and its label.
pub(super) struct Tick {
    pub(super) frac: f64,
    pub(super) label: String,
}

/// The ticks of an axis and the axis title, for what it measures.
pub(super) fn ticks(axis: &Axis, quantity: Quantity) -> (Vec<Tick>, String) {
    match *axis {
        Axis::Linear(l) => {
            let (divisor, title) = match quantity {
                Quantity::Seconds => (1.0, "time (s)".to_string()),
                Quantity::Latency => {
                    let (d, unit) = latency_unit(l.hi.abs().max(l.lo.abs()));
                    (d, format!("latency ({unit})"))
                }
                Quantity::Rate => {
                    let (d, prefix) = rate_unit(l.hi.abs().max(l.lo.abs()));
                    (d, format!("messages/s{}", prefix_note(prefix)))
                }
                Quantity::Percentile => (1.0, String::new()),
            };
            let ticks = l
                .ticks()
                .into_iter()
                .map(|v| Tick {
                    frac: l.frac(v),
                    label: number(v / divisor, l.step / divisor),
                })
                .collect();
            (ticks, title)
        }
        Axis::Log { lo, hi } => {
            let decades = (hi - lo).max(1);
            let mut ticks = Vec::new();
            if decades <= 3 {
                for e in lo..=hi {
                    for m in [1, 2, 5] {
                        if e == hi && m > 1 {
                            break;
                        }
                        let pos = f64::from(e - lo) + f64::from(m).log10();
                        ticks.push(Tick {
                            frac: pos / f64::from(decades),
                            label: decade_label(m, e),
                        });
                    }
                }
            } else {
                let stride = (decades + 7) / 8;
                let mut e = lo;
                while e <= hi && ticks.len() < MAX_TICKS {
                    ticks.push(Tick {
                        frac: f64::from(e - lo) / f64::from(decades),
                        label: decade_label(1, e),
                    });
                    e += stride;
                }
            }
            (ticks, "latency (log scale)".to_string())
        }
        Axis::Percentile(top) => {
            let top = top.max(1);
            let ticks = (0..=top)
                .map(|k| Tick {
                    frac: f64::from(k) / f64::from(top),
                    label: percentile_label(k),
                })
                .collect();
            (ticks, "percentile (log scale of 1 / (1 − q))".to_string())
        }
    }
}

/// What an axis measures, for its labels.
#[derive(Clone, Copy)]
pub(super) enum Quantity {
    Seconds,
    Percentile,
    Latency,
    Rate,
}

/// The divisor and unit for a linear latency axis reaching `max` µs.
pub(super) fn latency_unit(max: f64) -> (f64, &'static str) {
    if max >= 1e6 {
        (1e6, "s")
    } else if max >= 1e3 {
        (1e3, "ms")
    } else {
        (1.0, "µs")
    }
}

/// The divisor and prefix for a rate axis reaching `max` per second.
pub(super) fn rate_unit(max: f64) -> (f64, &'static str) {
    if max >= 1e9 {
        (1e9, "G")
    } else if max >= 1e6 {
        (1e6, "M")
    } else if max >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    }
}

/// The axis-title note for a rate prefix.
pub(super) fn prefix_note(prefix: &str) -> &'static str {
    match prefix {
        "k" => " (thousands)",
        "M" => " (millions)",
        "G" => " (billions)",
        _ => "",
    }
}

/// The label of the log-axis tick `m * 10^e` µs, in the unit that suits that decade.
pub(super) fn decade_label(m: i32, e: i32) -> String {
    let (e, unit) = if e >= 6 {
        (e - 6, "s")
    } else if e >= 3 {
        (e - 3, "ms")
    } else {
        (e, "µs")
    };
    if (-3..=4).contains(&e) {
        let v = f64::from(m) * 10f64.powi(e);
        format!("{} {unit}", trim(format!("{:.*}", (-e).max(0) as usize, v)))
    } else {
        format!("{m}e{e} {unit}")
    }
}

/// The label of percentile tick `k` (at `1 - 10^-k`): 0 %, 90 %, 99 %, 99.9 %, …
pub(super) fn percentile_label(k: i32) -> String {
    match k {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        _ => {
            let nines = "9".repeat((k - 2) as usize);
            if nines.is_empty() {
                "99%".to_string()
            } else {
                format!("99.{nines}%")
            }
        }
    }
}

/// `v` written with as many decimals as `step` needs, without trailing zeros; very large or very
/// small values in exponent form.
pub(super) fn number(v: f64, step: f64) -> String {
    if v == 0.0 || v.abs() < step.abs() * 1e-9 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        let s = format!("{v:.2e}");
        return match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim(mantissa.to_string())),
            None => s,
        };
    }
    let decimals = if step > 0.0 && step.is_finite() {
        ((-step.log10()).ceil() + 1.0).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    trim(format!("{v:.decimals$}"))
}

/// Drops trailing zeros after a decimal point, and the point itself when nothing is left after it.
pub(super) fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The smallest stride (1 for every tick) such that `apart(i, i + stride)` holds for every
/// labelled pair among `count` ticks; `count` (only the first labelled) when none does.
pub(super) fn label_stride(count: usize, apart: impl Fn(usize, usize) -> bool) -> usize {
    (1..count.max(1))
        .find(|&stride| {
            (0..count)
                .step_by(stride)
                .zip((stride..count).step_by(stride))
                .all(|(a, b)| apart(a, b))
        })
        .unwrap_or(count.max(1))
}

/// Estimated width of a label, in user units.
pub(super) fn label_width(label: &str) -> f64 {
    label.chars().count() as f64 * CHAR_WIDTH
}
