"""adapter_dsl.model_types: the model-type table as plain data, and the backend's former names."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_the_table_loads_without_torch() -> None:
    code = (
        "import sys; from adapter_dsl.model_types import MODEL_TYPES, BUILT_IN;"
        "assert {'bert', 'gpt2', 'bart', 'llama', 't5'} <= BUILT_IN == set(MODEL_TYPES);"
        "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rows_are_model_specs_keyed_by_their_model_type() -> None:
    from adapter_dsl.model_interface import ModelInterface, ModelSpec
    from adapter_dsl.model_types import MODEL_TYPES

    assert ModelInterface is ModelSpec
    for model_type, spec in MODEL_TYPES.items():
        assert isinstance(spec, ModelSpec)
        assert spec.model_type == model_type


def test_former_backend_names_are_aliases() -> None:
    pytest.importorskip("torch")
    from adapter_dsl import backend
    from adapter_dsl.backend import architectures
    from adapter_dsl.model_interface import ArchitectureSpec, ModelSpec
    from adapter_dsl.model_types import MODEL_TYPES

    assert ArchitectureSpec is ModelSpec is architectures.ArchitectureSpec
    # One table: a registration through either name is seen through the other.
    assert backend.ARCHITECTURES is backend.MODEL_TYPES is MODEL_TYPES
    assert backend.get_architecture is backend.get_model_spec
