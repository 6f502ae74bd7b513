"""Execute: plan an ablation into units of work, claim them through the study storage, train them.

plan (ablation -> cells -> units), storage (Optuna: claiming, staleness, heartbeats), worker (the claim loop),
run (one fit), module (the LightningModule), diagnostics (the measuring callback). Writes the store; never
imported by store, analyse or report.
"""
