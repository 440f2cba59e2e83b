"""The one shape guard: letters bind across tensors, digits are fixed, ``...`` takes leading axes, dtypes checked,
messages name the argument and the sizes, and it can be switched off."""

from __future__ import annotations

import pytest
import torch

from semdyn.errors import InputError
from semdyn.shapes import check_shape, shape_checks


def test_letters_bind_across_tensors_and_the_message_gives_the_known_sizes() -> None:
    dims: dict[str, int] = {}
    x = torch.zeros(2, 7, 3)
    assert check_shape(x, "[T, N, 3]", "dx", dims=dims) is x and dims == {"T": 2, "N": 7}
    with pytest.raises(InputError, match=r"ids must be an int64 tensor of shape \[N\] = \[7\], got shape \[6\]"):
        check_shape(torch.zeros(6, dtype=torch.int64), "[N]", "ids", dims=dims, dtype=torch.int64)
    with pytest.raises(InputError, match=r"w must be a floating-point tensor of shape \[N\] = \[7\], got shape \[7\] "):
        check_shape(torch.zeros(7, dtype=torch.int64), "[N]", "w", dims=dims, floating=True)


def test_fixed_sizes_leading_axes_and_non_tensors() -> None:
    assert check_shape(torch.zeros(4, 5, 4), "[..., 4]", "q").shape == (4, 5, 4)
    assert check_shape(torch.zeros(4), "[..., 4]", "q").shape == (4,)
    with pytest.raises(InputError, match=r"q must be a tensor of shape \[\.\.\., 4\], got shape \[4, 3\]"):
        check_shape(torch.zeros(4, 3), "[..., 4]", "q")
    with pytest.raises(InputError, match=r"means must be a tensor of shape \[N, 3\], got list"):
        check_shape([[0.0, 0.0, 0.0]], "[N, 3]", "means")
    with pytest.raises(InputError, match="got shape"):
        check_shape(torch.zeros(2, 3, 1), "[N, 3]", "means")  # one axis too many


def test_a_repeated_letter_must_repeat_its_size() -> None:
    check_shape(torch.zeros(3, 3), "[K, K]", "square")
    with pytest.raises(InputError, match="square"):
        check_shape(torch.zeros(3, 4), "[K, K]", "square")


def test_switched_off_it_returns_its_input_unchecked() -> None:
    bad = torch.zeros(2)
    with shape_checks(False):
        assert check_shape(bad, "[N, 3]", "means") is bad
    with pytest.raises(InputError):
        check_shape(bad, "[N, 3]", "means")


def test_a_malformed_pattern_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="pattern"):
        check_shape(torch.zeros(2), "N, 3", "x")
