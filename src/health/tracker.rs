//! The threshold machine of one check: observations in, UP / PENDING / DEGRADED / DOWN out.
//!
//! Pure and clock-free, so thresholds and windows are tested without time.
//! Maintenance is not a state here: the tracker keeps judging underneath a
//! window (checks keep running and recording), and `health` overlays
//! MAINTENANCE on what it reports.

use std::collections::VecDeque;

use serde::Serialize;

use crate::config::FailureThreshold;

/// A check's health as lantern reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Not yet observed, or failing but not yet confirmed (below the failure threshold).
    Pending,
    Up,
    /// Up, but slower than the check's `degraded-above` latency tier.
    Degraded,
    Down,
    /// Inside a maintenance window: still probed and recorded, never paged.
    Maintenance,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Pending,
        State::Up,
        State::Degraded,
        State::Down,
        State::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Up => "UP",
            State::Degraded => "DEGRADED",
            State::Down => "DOWN",
            State::Maintenance => "MAINTENANCE",
        }
    }

    /// UP and DEGRADED both serve: orders go through, just slower.
    pub fn is_serving(self) -> bool {
        matches!(self, State::Up | State::Degraded)
    }
}

/// The rules a tracker applies, from the check's config.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub failure: FailureThreshold,
    pub success: u32,
}

/// One check's recent history and the state it implies.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: State,
    consecutive_failures: u32,
    consecutive_successes: u32,
    /// Newest last; as long as the window of an "N of M" threshold.
    window: VecDeque<bool>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            state: State::Pending,
            consecutive_failures: 0,
            consecutive_successes: 0,
            window: VecDeque::new(),
        }
    }
}

impl Tracker {
    pub fn state(&self) -> State {
        self.state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// True when the last observation failed but the check is not DOWN yet:
    /// the scheduler then looks again soon to confirm or clear it.
    pub fn suspect(&self) -> bool {
        self.consecutive_failures > 0 && self.state != State::Down
    }

    /// Feeds one observation; returns the new state (which may equal the old).
    /// `slow` marks a success above the degraded latency tier.
    pub fn observe(&mut self, rules: &Rules, ok: bool, slow: bool) -> State {
        if ok {
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.consecutive_successes = 0;
        }
        let cap = match rules.failure {
            FailureThreshold::Window { of, .. } => of as usize,
            FailureThreshold::Consecutive(_) => 0,
        };
        if cap > 0 {
            self.window.push_back(ok);
            while self.window.len() > cap {
                self.window.pop_front();
            }
        }
        let tripped = match rules.failure {
            FailureThreshold::Consecutive(n) => self.consecutive_failures >= n,
            FailureThreshold::Window { failures, .. } => {
                !ok && self.window.iter().filter(|o| !**o).count() as u32 >= failures
            }
        };
        let serving = if slow { State::Degraded } else { State::Up };
        self.state = match (self.state, ok) {
            (_, false) if tripped => State::Down,
            (State::Down, false) => State::Down,
            (_, false) => State::Pending,
            // Recovery needs `success` in a row, so a flapping target stays DOWN.
            (State::Down, true) if self.consecutive_successes < rules.success => State::Down,
            (State::Down, true) => {
                // A fresh start for the window, or old failures would trip it
                // again on the first new one.
                self.window.clear();
                serving
            }
            (_, true) => serving,
        };
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut Tracker, rules: &Rules, seq: &str) -> Vec<State> {
        seq.chars()
            .map(|c| t.observe(rules, c == '+', c == 's'))
            .collect()
    }

    #[test]
    fn one_lost_probe_never_turns_a_check_down_with_a_threshold_of_two() {
        let rules = Rules {
            failure: FailureThreshold::Consecutive(2),
            success: 1,
        };
        let mut t = Tracker::default();
        let states = feed(&mut t, &rules, "+-+-+-");
        assert!(!states.contains(&State::Down), "{states:?}");
        assert_eq!(states[1], State::Pending);
        assert_eq!(t.observe(&rules, false, false), State::Down);
    }

    #[test]
    fn n_of_m_catches_one_bad_node_behind_a_load_balancer() {
        // One node of three broken: every third probe fails, never two in a row.
        let consecutive = Rules {
            failure: FailureThreshold::Consecutive(2),
            success: 1,
        };
        let window = Rules {
            failure: FailureThreshold::Window { failures: 3, of: 9 },
            success: 1,
        };
        let pattern = "++-++-++-++-";
        let mut a = Tracker::default();
        let mut b = Tracker::default();
        assert!(!feed(&mut a, &consecutive, pattern).contains(&State::Down));
        let states = feed(&mut b, &window, pattern);
        assert_eq!(
            states[8],
            State::Down,
            "third failure within nine: {states:?}"
        );
    }

    #[test]
    fn recovery_waits_for_the_success_threshold() {
        let rules = Rules {
            failure: FailureThreshold::Consecutive(1),
            success: 3,
        };
        let mut t = Tracker::default();
        assert_eq!(t.observe(&rules, false, false), State::Down);
        let states = feed(&mut t, &rules, "++-+++");
        assert_eq!(
            states,
            vec![
                State::Down,
                State::Down,
                State::Down,
                State::Down,
                State::Down,
                State::Up
            ]
        );
    }

    #[test]
    fn a_slow_success_is_degraded_and_still_serving() {
        let rules = Rules {
            failure: FailureThreshold::Consecutive(2),
            success: 1,
        };
        let mut t = Tracker::default();
        assert_eq!(t.observe(&rules, true, true), State::Degraded);
        assert!(State::Degraded.is_serving());
        assert_eq!(t.observe(&rules, true, false), State::Up);
    }

    #[test]
    fn a_suspect_check_is_one_that_failed_below_the_threshold() {
        let rules = Rules {
            failure: FailureThreshold::Consecutive(2),
            success: 1,
        };
        let mut t = Tracker::default();
        t.observe(&rules, false, false);
        assert!(t.suspect());
        t.observe(&rules, false, false);
        assert!(!t.suspect(), "DOWN is confirmed, no longer suspect");
        t.observe(&rules, true, false);
        assert!(!t.suspect());
    }
}
