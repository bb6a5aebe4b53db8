//! Property: whatever the label values (quotes, backslashes, newlines, ` # {`), the Prometheus
//! text is the OpenMetrics exposition minus exemplars — the converter never cuts inside a
//! quoted label value.

use obs_core::{RequestContext, RequestId};
use obs_metrics::{opts, DynCounter, Format, Registry, Scope};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn prometheus_text_is_openmetrics_without_exemplars(
        values in proptest::collection::vec("(.|\"|\\\\|\n| # \\{)*", 1..6)
    ) {
        let r = Registry::new();
        let c: DynCounter<1> = r
            .dyn_counter("odd_values_total", "Odd values.", Scope::Business,
                opts().labels(&["v"]).exemplars())
            .unwrap();
        let ctx = RequestContext::new(RequestId::generate());
        ctx.sync_scope(|| {
            for v in &values {
                c.inc([v.as_str()]);
            }
        });
        let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
        let pt = r.encode(Format::Prometheus, &[Scope::Business]);
        let om_samples: Vec<&str> = om
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(" # {request_id=").map_or(l, |(s, _)| s))
            .collect();
        let pt_samples: Vec<&str> = pt.lines().filter(|l| !l.starts_with('#')).collect();
        prop_assert_eq!(&om_samples, &pt_samples);
        let all_have_exemplars = om_samples
            .iter()
            .all(|l| om.contains(&format!("{} # {{request_id=", l)));
        prop_assert!(all_have_exemplars);
        prop_assert!(!pt.contains("request_id"));
        let distinct: std::collections::HashSet<&String> = values.iter().collect();
        prop_assert_eq!(pt_samples.len(), distinct.len());
    }
}
