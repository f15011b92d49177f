"""First-order rounding analysis of the float64 schedule (derives SCHEDULE_RTOL in test_sampling_schedule.py).

    PYTHONPATH=. python tests/derivations/schedule_rounding.py

The schedule (docs/official_behaviour.md#schedule) is written as a chain of elementary operations, each
result multiplied by (1 + e_k) with a per-element relative perturbation e_k. For every output element,
sum_k |d out / d e_k| / |out| (at e = 0) is its relative condition number kappa: if every operation is off
by at most one unit roundoff u = 2^-53, the element is off by at most kappa u (first order). Correctly
rounded IEEE operations (+ - * / sqrt) give the same bits on every CPU, so two implementations can only
differ through the operations that are not: linspace, the two x ** 2 and the two cumprod (vectorised
kernels, fused multiply-add, reassociation). The script prints, per array, the largest kappa over all
operations and over those "variable" operations only, and 2 kappa_var u: the bound on the relative
difference between two implementations (both off by one ulp in every variable operation, aligned).
It takes about a minute (one backward pass per sampled element).
"""
from __future__ import annotations

import math

import torch

T = 1000
U = 2.0 ** -53
ARRAYS = ["betas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
          "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod"]
# (name, length): operations whose result is perturbed, in evaluation order
OPS = [("linspace", T), ("pow2", T), ("1-b", T), ("cumprod1", T), ("sqrt", T), ("s-last", T), ("*ratio", T),
       ("pow2b", T), ("ratio_ab", T), ("1-al", T), ("1-beta", T), ("cumprod2", T), ("sqrt(ab)", T),
       ("1-ab", T), ("sqrt(1-ab)", T), ("1/ab", T - 1), ("sqrt(1/ab)", T), ("1/ab'", T - 1), ("-1", T - 1),
       ("sqrt(1/ab-1)", T)]
VARIABLE = {"linspace", "pow2", "cumprod1", "pow2b", "cumprod2"}


def schedule(e: list[torch.Tensor]) -> list[torch.Tensor]:
    it = iter(e)

    def p(x):
        return x * (1 + next(it))

    lin = p(torch.linspace(math.sqrt(0.00085), math.sqrt(0.012), T, dtype=torch.float64))
    b = p(lin ** 2)
    cp = torch.cumprod(p(p(1.0 - b)), 0)  # each partial product's rounding folded into its factor
    s = p(cp.sqrt())
    first, last = s[0], s[-1]
    s2 = p(p(s - last) * (first / (first - last)))
    ab = p(s2 ** 2)
    beta = p(1.0 - p(torch.cat([ab[:1], ab[1:] / ab[:-1]])))
    ac = torch.cumprod(p(p(1.0 - beta)), 0)
    head, end = ac[:-1], ac[-1:]  # alpha_bar[999] = 0: the reciprocal arrays are inf there, skip it
    o_sqrt = p(torch.cat([head.sqrt(), end]))  # sqrt(0) = 0, without the infinite derivative
    o_sqrt1m = p(torch.sqrt(p(1.0 - ac)))
    o_recip = p(torch.cat([torch.sqrt(p(1.0 / head)), end]))
    o_recipm1 = p(torch.cat([torch.sqrt(p(p(1.0 / head) - 1.0)), end]))
    return [beta, ac, o_sqrt, o_sqrt1m, o_recip, o_recipm1]


def main() -> None:
    torch.set_num_threads(1)
    eps = [torch.zeros(n, dtype=torch.float64, requires_grad=True) for _, n in OPS]
    base = [x.detach() for x in schedule(eps)]
    for k, name in enumerate(ARRAYS):
        out = base[k]
        idx = (torch.isfinite(out) & (out != 0)).nonzero().flatten().tolist()
        worst_all = worst_var = (0.0, None)
        for i in sorted(set(idx[::7] + idx[:8] + idx[-8:])):
            grads = torch.autograd.grad(schedule(eps)[k][i], eps, allow_unused=True)
            kappa = [0.0 if g is None else float(g.abs().sum()) / abs(float(out[i])) for g in grads]
            var = sum(c for c, (op, _) in zip(kappa, OPS) if op in VARIABLE)
            worst_all = max(worst_all, (sum(kappa), i))
            worst_var = max(worst_var, (var, i))
        print(f"{name:30s} kappa(all ops) {worst_all[0]:8.0f} (t={worst_all[1]}), kappa(variable ops) "
              f"{worst_var[0]:7.0f} (t={worst_var[1]}) -> 2 kappa u = {2 * worst_var[0] * U:.1e}")


if __name__ == "__main__":
    main()
