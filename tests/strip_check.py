"""Strip-versus-whole check for a local node: the executor's strip run against its whole run."""
import numpy as np

from nodegraph.execute import Const, Plan, Step, run_plan
from nodegraph.graph import Ref


def one_node_plan(spec, inputs: dict, params: dict | None = None) -> Plan:
    """A plan of one step of ``spec`` reading the given values (constant inputs) and exposing
    every output."""
    sources = {port: Const(value, spec.inputs[port].type) for port, value in inputs.items()}
    step = Step("node", spec, sources, {**spec.default_params(), **(params or {})})
    return Plan([step], {port: Ref("node", port) for port in spec.outputs}, graph=None)


def assert_strips_match_whole(spec, inputs: dict, params: dict | None, strip_rows: int,
                              atol: float, workers: int = 3) -> dict:
    """Run the node whole (``keep_all`` never streams) and in strips of ``strip_rows`` rows on
    ``workers`` threads; every output must agree to ``atol``. Returns the strip run's records."""
    whole = run_plan(one_node_plan(spec, inputs, params), keep_all=True)
    strips = run_plan(one_node_plan(spec, inputs, params), strip_rows=strip_rows, workers=workers)
    height = next(iter(whole.outputs.values())).shape[0]
    assert strips.records["node"].strips == -(-height // strip_rows)  # it did run in strips
    for port in spec.outputs:
        expected, got = whole.outputs[port], strips.outputs[port]
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, atol=atol, rtol=0, err_msg=f"output {port}")
    return strips.records
