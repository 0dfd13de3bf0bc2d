//! Paging metrics: pages by channel and result, outbox depth and age, acks, escalations, time to ack.

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

pub struct PageMetrics {
    /// result: sent, retried, failed, fallback, bundled.
    pub messages: IntCounterVec,
    pub outbox_depth: IntGauge,
    pub outbox_oldest_age: Gauge,
    pub acks: IntCounterVec,
    pub escalations: IntCounter,
    pub nobody_on_duty: IntCounter,
    pub time_to_ack: Histogram,
    pub handovers: IntCounterVec,
    pub promises: IntCounterVec,
    pub watcher_pings: IntCounterVec,
}

impl PageMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<PageMetrics> {
        let messages = IntCounterVec::new(
            Opts::new(
                "lantern_page_messages_total",
                "Page delivery attempts by channel and result (sent, retried, failed, fallback, bundled).",
            ),
            &["channel", "result"],
        )?;
        let outbox_depth = IntGauge::new(
            "lantern_page_outbox_depth",
            "Pages waiting in the outbox (pending or sending).",
        )?;
        let outbox_oldest_age = Gauge::new(
            "lantern_page_outbox_oldest_age_seconds",
            "Age of the oldest page still waiting in the outbox; 0 when it is empty.",
        )?;
        let acks = IntCounterVec::new(
            Opts::new(
                "lantern_page_acks_total",
                "Acknowledgements taken, by how they came.",
            ),
            &["via"],
        )?;
        let escalations = IntCounter::new(
            "lantern_page_escalation_steps_total",
            "Escalation steps fired.",
        )?;
        let nobody_on_duty = IntCounter::new(
            "lantern_page_nobody_on_duty_total",
            "Escalation rounds that found nobody on duty to page.",
        )?;
        let time_to_ack = Histogram::with_opts(
            HistogramOpts::new(
                "lantern_page_time_to_ack_seconds",
                "Time from an incident opening to its first acknowledgement.",
            )
            .buckets(vec![30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0]),
        )?;
        let handovers = IntCounterVec::new(
            Opts::new(
                "lantern_page_handovers_total",
                "Shift handovers by outcome (sent, signed, escalated).",
            ),
            &["result"],
        )?;
        let promises = IntCounterVec::new(
            Opts::new(
                "lantern_page_promises_total",
                "Response promise timers by stage reached (started, warned, paged, escalated, kept).",
            ),
            &["stage"],
        )?;
        let watcher_pings = IntCounterVec::new(
            Opts::new(
                "lantern_page_watcher_pings_total",
                "Pings of the external dead man's switch, by result (sent, failed, withheld).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(outbox_depth.clone()))?;
        registry.register(Box::new(outbox_oldest_age.clone()))?;
        registry.register(Box::new(acks.clone()))?;
        registry.register(Box::new(escalations.clone()))?;
        registry.register(Box::new(nobody_on_duty.clone()))?;
        registry.register(Box::new(time_to_ack.clone()))?;
        registry.register(Box::new(handovers.clone()))?;
        registry.register(Box::new(promises.clone()))?;
        registry.register(Box::new(watcher_pings.clone()))?;
        Ok(PageMetrics {
            messages,
            outbox_depth,
            outbox_oldest_age,
            acks,
            escalations,
            nobody_on_duty,
            time_to_ack,
            handovers,
            promises,
            watcher_pings,
        })
    }
}
