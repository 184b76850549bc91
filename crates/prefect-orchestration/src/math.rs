//! Random wait times with Prefect's distributions (inverse-CDF exponential draws).

/// An exponential inter-arrival time around `average`, from a uniform draw in `[lower, upper)`.
pub fn poisson_interval(average: f64, lower: f64, upper: f64, uniform: f64) -> f64 {
    let u = lower + (upper - lower) * uniform;
    -(1.0 - u).max(1e-10).ln() * average
}

fn exponential_cdf(x: f64, average: f64) -> f64 {
    1.0 - (-x / average).exp()
}

fn lower_clamp_multiple(k: f64) -> f64 {
    if k >= 50.0 {
        return 0.0;
    }
    let two_k = 2f64.powf(k);
    (two_k / (two_k - 1.0)).max(1e-10).log2()
}

/// A random interval bounded by `average * (1 + clamping_factor)` whose mean stays near `average`.
/// An average of zero or less gives zero. `uniform` is a draw from `[0, 1)`.
pub fn clamped_poisson_interval(average: f64, clamping_factor: f64, uniform: f64) -> f64 {
    if average <= 0.0 || clamping_factor <= 0.0 {
        return average.max(0.0);
    }
    let upper_multiple = 1.0 + clamping_factor;
    let upper_bound = average * upper_multiple;
    let lower_bound = (average * lower_clamp_multiple(upper_multiple)).max(0.0);
    let upper = exponential_cdf(upper_bound, average);
    let lower = exponential_cdf(lower_bound, average);
    poisson_interval(average, lower, upper, uniform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_interval_stays_in_bounds() {
        for i in 0..100 {
            let u = f64::from(i) / 100.0;
            let v = clamped_poisson_interval(10.0, 0.3, u);
            assert!((0.0..=13.0 + 1e-9).contains(&v), "{v}");
        }
        assert_eq!(clamped_poisson_interval(0.0, 0.3, 0.5), 0.0);
    }
}
