import pytest

from fiqa_bench.registry import DuplicateNameError, Registry, UnknownNameError


def make() -> Registry:
    reg: Registry = Registry("widget")
    reg.add("alpha", 1, description="first", aliases=("a",))
    reg.add("beta", 2, description="second")
    return reg


def test_lookup_by_name_and_alias():
    reg = make()
    assert reg.get("alpha") == 1 and reg.get("a") == 1 and reg.get("beta") == 2
    assert reg.canonical("a") == "alpha"
    assert "a" in reg and "gamma" not in reg
    assert reg.names() == ["alpha", "beta"] and len(reg) == 2


def test_duplicate_name_or_alias_is_an_error():
    reg = make()
    with pytest.raises(DuplicateNameError, match="alpha"):
        reg.add("alpha", 3, description="again")
    with pytest.raises(DuplicateNameError, match="'a'"):
        reg.add("gamma", 3, description="x", aliases=("a",))
    with pytest.raises(DuplicateNameError, match="beta"):
        reg.add("a2", 3, description="x", aliases=("beta",))


def test_miss_suggests_close_names():
    reg = make()
    with pytest.raises(UnknownNameError) as info:
        reg.get("alpah")
    assert "did you mean 'alpha'" in str(info.value)
    assert "Known: alpha, beta" in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        reg.get("zzzzzz")
    assert "did you mean" not in str(info.value)


def test_decorator_and_description_required():
    reg: Registry = Registry("thing")

    @reg.register("f", description="a function")
    def f():
        return 7

    assert reg.get("f")() == 7
    assert reg.entry("f").description == "a function"
    with pytest.raises(ValueError, match="description"):
        reg.add("g", 1, description="  ")
    with pytest.raises(ValueError, match="non-empty"):
        reg.add("", 1, description="x")
