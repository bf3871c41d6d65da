"""The pipeline: every stage registered; the order (data → [enrich] → index → synth → sft → rl → eval) is derived
from what each stage consumes (:func:`gream_pipeline.stages.topological_order`)."""

from gream_pipeline.data.stage import DATA
from gream_pipeline.eval.stage import EVAL
from gream_pipeline.index.stage import INDEX
from gream_pipeline.rl.stage import RL, RL_CHECK
from gream_pipeline.sft.stage import SFT
from gream_pipeline.stages import register
from gream_pipeline.synth.stage import ENRICH, SYNTH

register(DATA, ENRICH, INDEX, SYNTH, SFT, RL, EVAL, RL_CHECK)
