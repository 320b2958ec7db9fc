-- Migration 11: how each planned row's action was chosen (issue 19, exploration).
-- Released: never edit; a change is a new migration file (churnguard/store.py lists them).
-- 'model' (the greedy allocation), 'explore' (randomised where the effects are least known,
-- docs/intervene.md "Exploration"), 'control' / 'explore_control' (held out from either).
-- Rows of plans made before this migration are NULL: the model's, or control where is_control.
ALTER TABLE plan_rows ADD COLUMN assignment VARCHAR;
