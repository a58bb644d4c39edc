"""`keras.models`: functional, Sequential and subclassed models."""

from kerasish.models.model import Model
from kerasish.models.model import model_from_config
from kerasish.models.model import model_from_json
from kerasish.models.model import model_from_yaml
from kerasish.models.functional import Functional
from kerasish.models.sequential import Sequential
from kerasish.models.cloning import clone_model
from kerasish.saving.saving_api import load_model
from kerasish.saving.saving_api import save_model

__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model", "model_from_config", "model_from_json", "model_from_yaml",
           "save_model"]
