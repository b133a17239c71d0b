//! The breathing model is live: excursion spans about the amplitude, end-expiration is the long phase, and the belt
//! signal follows the excursion.

use acus_sim_twin::breathing::{Breathing, BreathingModel};

fn model(amplitude: f64) -> BreathingModel {
    BreathingModel {
        amplitude,
        ap_ratio: 0.3,
        period: 4.0,
        n: 3,
        period_variability: 0.1,
        amplitude_variability: 0.15,
        drift_sigma: 0.0015,
        drift_time: 30.0,
        signal_gain: 150_000.0,
        signal_noise: 30.0,
        signal_lag: 0.2,
        signal_rate: 25.0,
    }
}

#[test]
fn lesion_moves_by_about_the_amplitude_and_the_belt_follows() {
    let b = Breathing::new(&model(0.012), 5);
    let e: Vec<f64> = (0..2500).map(|i| b.excursion(i as f64 * 0.04)).collect();
    let lo = e.iter().cloned().fold(f64::MAX, f64::min);
    let hi = e.iter().cloned().fold(f64::MIN, f64::max);
    println!("excursion range over 100 s: {:.2} .. {:.2} mm", lo * 1e3, hi * 1e3);
    assert!((hi - lo) > 0.009 && (hi - lo) < 0.025, "{}", hi - lo);
    // End-inspiration vs end-expiration of the first cycle differ by about the amplitude.
    let d = (b.displacement(2.0) - b.displacement(0.0)).norm();
    assert!(d > 0.006 && d < 0.02, "{d}");
    // Signal vs excursion (lag-compensated not needed to exceed 0.9).
    let s: Vec<f64> = (0..2500).map(|i| b.signal(i as f64 * 0.04)).collect();
    let r = corr(&e, &s);
    println!("belt–excursion correlation {r:.3}");
    assert!(r > 0.9, "{r}");
    let off = Breathing::new(
        &BreathingModel {
            drift_sigma: 0.0,
            ..model(0.0)
        },
        5,
    );
    assert!(off.displacement(2.0).norm() < 1e-9);
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}
