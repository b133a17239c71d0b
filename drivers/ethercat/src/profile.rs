//! The setpoint profile the cycle interpolates along: trapezoidal, velocity- and acceleration-limited, re-planned
//! every period. Pure.

/// One step of a time-optimal, velocity- and acceleration-limited approach to `goal`
/// (trapezoidal profile, re-planned every period so a new goal is taken at any time).
pub fn interpolate(p: f64, v: f64, goal: f64, vmax: f64, amax: f64, dt: f64) -> (f64, f64) {
    let d = goal - p;
    let dv_max = amax * dt;
    if d.abs() <= 0.5 * dv_max * dt && v.abs() <= dv_max {
        return (goal, 0.0);
    }
    // Fastest speed from which the remaining distance still allows a stop (discrete braking).
    let v_stop = ((2.0 * amax * d.abs()).sqrt() - 0.5 * dv_max).max(0.0);
    let v_des = d.signum() * vmax.min(v_stop);
    let v_new = v + (v_des - v).clamp(-dv_max, dv_max);
    let p_new = p + v_new * dt;
    // Never step past the goal.
    if (goal - p_new) * d < 0.0 {
        return (goal, 0.0);
    }
    (p_new, v_new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_respects_limits_and_arrives() {
        let (vmax, amax, dt) = (0.05, 0.5, 0.001);
        let (mut p, mut v) = (0.0, 0.0);
        let mut steps = 0;
        while (p, v) != (0.1, 0.0) {
            let (p2, v2) = interpolate(p, v, 0.1, vmax, amax, dt);
            assert!(v2.abs() <= vmax + 1e-12, "velocity {v2}");
            assert!((v2 - v).abs() <= amax * dt + 1e-12, "acceleration {}", (v2 - v) / dt);
            assert!(p2 <= 0.1 + 1e-12);
            (p, v) = (p2, v2);
            steps += 1;
            assert!(steps < 10_000, "did not arrive: p {p} v {v}");
        }
        // 0.1 m at 0.05 m/s with 0.1 s ramps: 2.1 s ideal.
        assert!((2000..2300).contains(&steps), "took {steps} cycles");
    }
}
