//! Steering the needle from the check scans: the scan and its analysis after a step, and the next step's request,
//! which applies the check scan's correction, or its redirect when no correction of the inserted needle reaches the
//! target.

use std::sync::Arc;

use acus_control::procedure::{Event, Stage};

use super::{Actor, Done, Job};
use crate::check::{analyse, CheckInput, CheckScanError};
use crate::gating::gated_scan;
use crate::{Report, ScanPurpose};

impl Actor {
    pub(super) fn check_scan(&mut self, step: usize) -> Option<Job> {
        let (Some(plan), Some(registration)) = (self.machine.plan(), self.machine.registration()) else {
            self.fail("check scan: no plan or registration");
            return None;
        };
        let t_ct_robot = registration.t_robot_ct().inverse();
        let planned_tip = self
            .machine
            .step(step)
            .map(|s| t_ct_robot.apply(&self.s.planner.model().forward(&s.goal).tip))
            .unwrap_or_else(|| plan.target_ct());
        let input = CheckInput {
            planner: self.s.planner.clone(),
            t_robot_ct: registration.t_robot_ct(),
            entry_ct: plan.entry_ct(),
            target_ct: self.target_seen.unwrap_or_else(|| plan.target_ct()),
            plan: plan.clone(),
            lesion: self.s.lesion,
            q: self.motion.status().borrow().actual,
            expected_tip: self.expected_tip.unwrap_or(planned_tip),
            last_step: step + 1 >= self.machine.planned_steps(),
            steps: self.performed.clone(),
            curvature_prior: self.s.curvature_prior,
            axis_prior: self.s.axis_prior,
            needle: self.s.needle,
            done_within: self.s.done_within,
            min_correction_depth: self.s.min_correction_depth,
            frame_of_reference: self.frame_of_reference.clone(),
            max_correction_angle: self.s.machine.max_correction_angle,
            max_tip_error: self.s.machine.max_tip_error,
            redirect_depth: self.s.redirect_depth,
        };
        let purpose = ScanPurpose::Check { step };
        let (scanner, gate) = (Arc::clone(&self.scanner), self.breath.clone());
        let reports = self.reports.clone();
        Some(Box::pin(async move {
            let scan = match gated_scan(gate, scanner, purpose).await {
                Ok(scan) => scan,
                Err(e) => return Done::Checked(step, Err(CheckScanError::Gating(e))),
            };
            let result = match scan {
                Ok(dir) => {
                    let _ = reports.send(Report::Scan {
                        purpose,
                        dir: dir.clone(),
                    });
                    tokio::task::spawn_blocking(move || analyse(&dir, &input).map(|r| (dir, r)))
                        .await
                        .unwrap_or_else(|e| Err(CheckScanError::Analysis(e.to_string())))
                }
                Err(e) => Err(CheckScanError::NotAcquired(e)),
            };
            Done::Checked(step, result)
        }))
    }

    /// The operator asks for the next step: with the check scan's correction (or redirect) first, if it offered one.
    pub(super) fn insert_step(&mut self) -> Option<Job> {
        let correction = self.correction.take().filter(|_| self.s.correct);
        let redirect = self.redirect.take().filter(|_| self.s.correct);
        // Where no correction of the inserted needle reaches the target, the check scan offered a redirect.
        if let (Some(r), Stage::NeedsCorrection { .. }) = (redirect, self.machine.stage()) {
            let turn = r.replan.direction().angle(&self.current_direction());
            match self.machine.handle(Event::Replanned(r.replan.clone())) {
                Ok(actions) => {
                    self.say(format!(
                        "redirect ({}): withdrawing to {:.1} mm below the entry, re-aiming by {:.2}° about it",
                        r.why,
                        r.withdraw_depth * 1e3,
                        turn.to_degrees()
                    ));
                    self.expected_tip = Some(r.expected_tip);
                    self.then = Some(Event::InsertStepRequested);
                    return self.perform(actions);
                }
                Err(rejection) => {
                    // The check scan offered a redirect because no correction of the inserted needle reaches
                    // the target: the refusal is the answer (the needle stays where it is). Both stay offered: a
                    // refusal for a released deadman or an e-stop passes, and the next request tries again.
                    self.fail(format!("redirect refused ({}): {rejection}", r.why));
                    self.redirect = Some(r);
                    self.correction = correction;
                    return None;
                }
            }
        }
        if correction.is_none() && matches!(self.machine.stage(), Stage::NeedsCorrection { .. }) {
            // Neither a correction nor a redirect: say so, and the way out (the needle holds).
            let why = self
                .no_correction
                .clone()
                .unwrap_or_else(|| "none was found".to_owned());
            self.fail(format!(
                "no correction or redirect reaches the target ({why}); the needle holds: retract it, then plan \
                 again on a new scan"
            ));
            return None;
        }
        if let Some(replan) = correction {
            let pivot = replan.direction().angle(&self.current_direction());
            match self.machine.handle(Event::Replanned(replan)) {
                Ok(actions) => {
                    if pivot > 1e-6 {
                        self.say(format!("re-aimed by {:.2}° about the entry", pivot.to_degrees()));
                    }
                    self.then = Some(Event::InsertStepRequested);
                    return self.perform(actions);
                }
                Err(r) => {
                    tracing::warn!("correction not applied: {r}");
                    self.say(format!("correction not applied: {r}"));
                }
            }
        }
        self.feed(Event::InsertStepRequested)
    }
}
