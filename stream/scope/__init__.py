"""Model scope: one model, one incident. Per-partition summaries (:mod:`stream.scope.summary`) are merged in
event time (:mod:`stream.scope.merge`) and decided on per model (:mod:`stream.scope.stage`)."""
