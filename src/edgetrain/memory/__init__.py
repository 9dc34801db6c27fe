"""Memory planning: device catalogue, training-step schedule, tensor lifetimes, arena
planner and cost model. Answers "does training fit on this device?" before anything is
flashed; the exporter lays out its static arena from the same Plan."""
