//! Supervision of a guest that traps (or breaks a limit of its jail), as a decision with no
//! clock of its own: it is started afresh at once the first time, after a pause that
//! doubles each time it fails again (100 ms, 200 ms, ... up to 5 s), and given up (unloaded)
//! once it has failed more than [`MAX_RESTARTS`] times within [`RESTART_WINDOW`]. The
//! guest's worker ([`super::worker`]) asks and acts.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often a guest may fail within [`RESTART_WINDOW`] and still be restarted.
pub(crate) const MAX_RESTARTS: usize = 5;

/// The window over which a guest's failures are counted.
pub(crate) const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The pause before restarting a guest after its `failures`-th recent failure: none the
/// first time, then 100 ms, doubling, up to 5 s.
fn restart_pause(failures: usize) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(100u64 << (n - 2).min(6)).min(Duration::from_secs(5)),
    }
}

/// What to do with a guest that just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Start it afresh now.
    RestartNow,
    /// Start it afresh at this time (it is down until then); its `failures`-th recent
    /// failure.
    RestartAt {
        /// When.
        at: Instant,
        /// The pause until then.
        pause: Duration,
        /// Its recent failures, this one included.
        failures: usize,
    },
    /// Unload it: it failed `failures` times within the window.
    GiveUp {
        /// Its recent failures, this one included.
        failures: usize,
    },
}

/// A guest's recent failures, and when it restarts if it is waiting to.
#[derive(Debug, Default)]
pub(crate) struct Health {
    failures: VecDeque<Instant>,
    restart_at: Option<Instant>,
}

impl Health {
    /// The guest failed at `now`: what to do.
    pub(crate) fn failed(&mut self, now: Instant) -> Recovery {
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > RESTART_WINDOW)
        {
            self.failures.pop_front();
        }
        let failures = self.failures.len();
        if failures > MAX_RESTARTS {
            self.restart_at = None;
            return Recovery::GiveUp { failures };
        }
        let pause = restart_pause(failures);
        if pause.is_zero() {
            self.restart_at = None;
            Recovery::RestartNow
        } else {
            let at = now + pause;
            self.restart_at = Some(at);
            Recovery::RestartAt {
                at,
                pause,
                failures,
            }
        }
    }

    /// When the guest restarts, if it is waiting to.
    pub(crate) fn restart_at(&self) -> Option<Instant> {
        self.restart_at
    }

    /// Whether the guest is waiting to restart.
    pub(crate) fn is_resting(&self) -> bool {
        self.restart_at.is_some()
    }

    /// Whether its pause is over at `now`.
    pub(crate) fn restart_due(&self, now: Instant) -> bool {
        self.restart_at.is_some_and(|at| at <= now)
    }

    /// It was restarted, or unloaded: it waits for nothing.
    pub(crate) fn settled(&mut self) {
        self.restart_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_pause_longer_after_each_failure() {
        let pauses: Vec<u64> = (1..=9)
            .map(|n| restart_pause(n).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn a_guest_that_keeps_failing_is_restarted_later_each_time_then_given_up() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut health = Health::default();
        assert_eq!(health.failed(t0), Recovery::RestartNow);
        assert!(!health.is_resting());
        let second = health.failed(ms(10));
        assert_eq!(
            second,
            Recovery::RestartAt {
                at: ms(110),
                pause: Duration::from_millis(100),
                failures: 2
            }
        );
        assert!(health.is_resting());
        assert!(!health.restart_due(ms(109)));
        assert!(health.restart_due(ms(110)));
        assert_eq!(health.restart_at(), Some(ms(110)));
        health.settled();
        assert!(!health.is_resting());
        for (at, failures) in [(1000, 3), (2000, 4), (3000, 5)] {
            assert!(matches!(
                health.failed(ms(at)),
                Recovery::RestartAt { failures: f, .. } if f == failures
            ));
            health.settled();
        }
        assert_eq!(health.failed(ms(4000)), Recovery::GiveUp { failures: 6 });
        assert!(!health.is_resting());
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let t0 = Instant::now();
        let mut health = Health::default();
        // One failure every 13 s: never more than five within a minute.
        for i in 0..20 {
            let verdict = health.failed(t0 + Duration::from_secs(13 * i));
            assert!(!matches!(verdict, Recovery::GiveUp { .. }), "failure {i}");
            health.settled();
        }
    }
}
