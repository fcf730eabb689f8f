"""Big-Five activation steering: shipped data (contrastive pairs, held-out
questionnaire), per-layer trait vectors as a value type with a safetensors
cache, forward hooks that add a per-row delta, and the statement-likelihood
measurement that checks the vectors work. Nothing here knows about the
simulation; the HF backend and the scripts put the pieces together."""

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
