"""Layer path parsing, printing and constructors: pure, hand-computed expectations."""

import pytest

from rys.paths import (
    MAX_LAYERS,
    PathError,
    duplicate,
    format_path,
    interleave,
    parse_path,
    repeat,
    skip,
    truncate,
    validate,
)


def test_parse_circuit_finder_syntax():
    assert parse_path("0..3,2,3,4..5") == [0, 1, 2, 3, 2, 3, 4, 5]
    assert parse_path(" 0 .. 2 ,\t1 , 7\n") == [0, 1, 2, 1, 7]
    assert parse_path("5") == [5]
    assert parse_path("3..3") == [3]


def test_format_is_shortest_form():
    assert format_path([0, 1, 2, 3, 2, 3, 4, 5]) == "0..3,2..5"
    assert format_path([0, 1, 2, 3, 2, 3, 7]) == "0..3,2,3,7"
    assert format_path([0, 1]) == "0,1"  # "0..1" would be longer
    assert format_path([9, 10, 11]) == "9..11"
    assert format_path([5, 4, 3]) == "5,4,3"  # descending never becomes a range
    assert format_path([]) == ""


@pytest.mark.parametrize("path", [[0, 1, 2, 3, 2, 3, 4, 5], [7], [3, 3, 3], [0, 1, 5, 6, 7, 2], list(range(40))])
def test_format_round_trips(path):
    assert parse_path(format_path(path)) == path


def test_duplicate_is_rys_config():
    # (i, j) = (3, 6) on 8 layers: 0..5 then 3..7, block 3..5 runs twice
    assert duplicate(3, 6, 8) == [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7]
    assert format_path(duplicate(3, 7, 30)) == "0..6,3..29"
    assert duplicate(0, 8, 8) == list(range(8)) * 2


def test_repeat_and_interleave():
    assert repeat(2, 4, 3, 6) == [0, 1, 2, 3, 2, 3, 2, 3, 4, 5]
    assert repeat(2, 4, 2, 6) == duplicate(2, 4, 6)
    assert repeat(2, 4, 1, 6) == list(range(6))
    assert interleave(1, 3, 2, 5) == [0, 1, 1, 2, 2, 3, 4]


def test_skip_and_truncate():
    assert skip([1, 3], 5) == [0, 2, 4]
    assert truncate(3) == [0, 1, 2]
    assert truncate(3, 3) == [0, 1, 2]


@pytest.mark.parametrize("text, n_layers, words", [
    ("", None, "empty"),
    (" , ", None, "malformed"),
    ("1,,2", None, "malformed layer path item ''"),
    ("3..1", None, "reversed range '3..1'"),
    ("0..x", None, "malformed layer path item '0..x'"),
    ("-1", None, "malformed layer path item '-1'"),
    ("1...3", None, "malformed"),
    ("0..30", 30, "item '0..30' is out of range"),
    ("29,30", 30, "'30' is out of range"),
    (f"0..{MAX_LAYERS}", None, f"longer than {MAX_LAYERS}"),
])
def test_parse_errors_name_the_item(text, n_layers, words):
    with pytest.raises(PathError) as err:
        parse_path(text, n_layers)
    assert words in err.value.message
    assert err.value.hint
    if n_layers:
        assert f"0..{n_layers - 1}" in err.value.hint  # the valid range


def test_exactly_max_layers_is_fine():
    assert len(parse_path(f"0..{MAX_LAYERS - 1}")) == MAX_LAYERS


@pytest.mark.parametrize("call", [
    lambda: duplicate(5, 5, 10), lambda: duplicate(6, 5, 10), lambda: duplicate(0, 11, 10),
    lambda: repeat(1, 2, 0, 10), lambda: interleave(1, 2, 0, 10), lambda: skip(range(4), 4),
    lambda: skip([9], 4), lambda: truncate(0), lambda: truncate(5, 4), lambda: validate([], 4),
    lambda: validate([0, -1], 4), lambda: validate([0] * (MAX_LAYERS + 1), None),
])
def test_constructor_errors(call):
    with pytest.raises(PathError):
        call()
