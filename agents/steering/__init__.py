"""Big-Five activation steering: shipped data (contrastive pairs; a DEV
questionnaire for choices and a TEST questionnaire for reporting), per-layer
trait vectors as a value type with a safetensors cache, a dev-set cross-talk
calibration, forward hooks that add a per-row delta, the statement-likelihood
measurement that checks the vectors work and the dev-only sweep. Nothing here
knows about the simulation; the HF backend and the scripts put the pieces
together."""

from agents.steering.data import ContrastivePair, QuestionnaireItem, load_pairs, load_questionnaire
from agents.steering.hooks import SteeringHooks, decoder_layers
from agents.steering.vectors import SteeringVectors

__all__ = [
    "ContrastivePair",
    "QuestionnaireItem",
    "SteeringHooks",
    "SteeringVectors",
    "decoder_layers",
    "load_pairs",
    "load_questionnaire",
]
