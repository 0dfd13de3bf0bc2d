//! `lantern_backup_*`: freshness, sizes, checks, drills and 3-2-1 compliance per set and repository.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::compliance::{Reason, Verdict};

pub struct BackupMetrics {
    pub last_success: GaugeVec,
    pub last_duration: GaugeVec,
    pub processed_bytes: GaugeVec,
    pub processed_files: GaugeVec,
    pub added_bytes: GaugeVec,
    pub added_files: GaugeVec,
    pub snapshots: IntGaugeVec,
    pub newest_snapshot: GaugeVec,
    pub repository_size: GaugeVec,
    pub repository_present: IntGaugeVec,
    pub check_success: IntGaugeVec,
    pub check_timestamp: GaugeVec,
    pub check_findings: IntGaugeVec,
    pub drill_duration: GaugeVec,
    pub drill_success: IntGaugeVec,
    pub compliant: IntGaugeVec,
    pub compliance_reason: IntGaugeVec,
    pub runs: IntCounterVec,
}

impl BackupMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<BackupMetrics> {
        let gauge = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<GaugeVec> {
            let g = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let int = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let runs = IntCounterVec::new(
            Opts::new(
                "lantern_backup_runs_total",
                "Backup jobs run, by set, job (snapshot, copy, forget, check, drill) and result (success, failure, absent).",
            ),
            &["set", "job", "result"],
        )?;
        registry.register(Box::new(runs.clone()))?;
        Ok(BackupMetrics {
            last_success: gauge(
                "lantern_backup_last_success_timestamp_seconds",
                "When the job last succeeded, per set, job and repository; alert on its age.",
                &["set", "job", "repository"],
            )?,
            last_duration: gauge(
                "lantern_backup_last_run_duration_seconds",
                "How long the job's last run took.",
                &["set", "job", "repository"],
            )?,
            processed_bytes: gauge(
                "lantern_backup_processed_bytes",
                "Bytes read by the set's last snapshot.",
                &["set"],
            )?,
            processed_files: gauge(
                "lantern_backup_processed_files",
                "Files read by the set's last snapshot.",
                &["set"],
            )?,
            added_bytes: gauge(
                "lantern_backup_added_bytes",
                "Bytes (packed) the set's last snapshot added to its repository.",
                &["set"],
            )?,
            added_files: gauge(
                "lantern_backup_added_files",
                "New files in the set's last snapshot.",
                &["set"],
            )?,
            snapshots: int(
                "lantern_backup_snapshots",
                "Snapshots of the set in each repository.",
                &["set", "repository"],
            )?,
            newest_snapshot: gauge(
                "lantern_backup_newest_snapshot_timestamp_seconds",
                "Time of the set's newest snapshot in each repository (shows off-site lag).",
                &["set", "repository"],
            )?,
            repository_size: gauge(
                "lantern_backup_repository_size_bytes",
                "Total size of the repository's files.",
                &["repository"],
            )?,
            repository_present: int(
                "lantern_backup_repository_present",
                "Whether the repository was reachable (an offline medium attached) at the last attempt.",
                &["repository"],
            )?,
            check_success: int(
                "lantern_backup_check_success",
                "Whether the last check found no errors, by mode (structure or read-data).",
                &["repository", "mode"],
            )?,
            check_timestamp: gauge(
                "lantern_backup_check_timestamp_seconds",
                "When the repository was last checked, by mode.",
                &["repository", "mode"],
            )?,
            check_findings: int(
                "lantern_backup_check_findings",
                "Findings of the last check, by level (error, warning).",
                &["repository", "level"],
            )?,
            drill_duration: gauge(
                "lantern_backup_drill_duration_seconds",
                "How long the last restore drill took: the measured recovery time.",
                &["set"],
            )?,
            drill_success: int(
                "lantern_backup_drill_success",
                "Whether the last restore drill restored and verified every file.",
                &["set"],
            )?,
            compliant: int(
                "lantern_backup_compliant",
                "Whether the set meets 3-2-1: three fresh copies, two media, one off-site or offline.",
                &["set"],
            )?,
            compliance_reason: int(
                "lantern_backup_compliance_reason",
                "1 for the reason of the set's current 3-2-1 verdict (ok, too_few_copies, too_few_media, no_offsite).",
                &["set", "reason"],
            )?,
            runs,
        })
    }

    pub fn record_verdict(&self, v: &Verdict) {
        self.compliant
            .with_label_values(&[&v.set])
            .set(i64::from(v.compliant));
        for r in Reason::ALL {
            self.compliance_reason
                .with_label_values(&[&v.set, r.as_str()])
                .set(i64::from(r == v.reason));
        }
    }
}
