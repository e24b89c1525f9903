"""Float64 NumPy references of LAMB, LARS, LANS and LARC, written from the papers' and the
peers' formulas.

Each reference keeps its own state and takes one step at a time, so tests can compare every
step. Nothing here imports tf_lamb: the formulas are written out again on purpose.
"""

import numpy as np


def norm(x):
    return float(np.sqrt(np.sum(np.square(x, dtype=np.float64))))


def ratio(w_norm, u_norm, eta=1.0, bounds=(0.0, None), cap=None, offset=0.0):
    """min(eta * phi(||w||) / (||u|| + offset), cap); 1 where ||w|| == 0 or ||u|| == 0."""
    if w_norm == 0.0 or u_norm == 0.0:
        return 1.0
    lower, upper = bounds
    phi = max(w_norm, lower)
    if upper is not None:
        phi = min(phi, upper)
    r = eta * phi / (u_norm + offset)
    return min(r, cap) if cap is not None else r


class Reference:
    """Common state: float64 copies of the weights and per-layer settings."""

    def __init__(self, weights, lr, wd=0.0, decays=None, adapts=None, bounds=(0.0, None), cap=None,
                 store=None):
        # `store` rounds what the optimizer keeps in variables (weights and slots) to their
        # dtype, e.g. bfloat16; everything else is computed in float64. None: no rounding.
        self.store = store or (lambda x: x)
        self.w = [self.store(np.array(w, np.float64)) for w in weights]
        self.lr, self.wd, self.bounds, self.cap = lr, wd, bounds, cap
        n = len(self.w)
        self.decays = decays if decays is not None else [True] * n
        self.adapts = adapts if adapts is not None else [True] * n
        self.statistics = [None] * n
        self.t = 0

    def rate(self, i):
        return self.wd if self.decays[i] else 0.0

    def lr_at(self, t):
        return self.lr(t) if callable(self.lr) else self.lr

    def layerwise(self, i, directions, lr, mode="inside"):
        """w <- w - lr * sum c * ratio * (u [+ wd w]); decoupled decays w first."""
        w = self.w[i]
        wd = self.rate(i)
        base = w * (1.0 - lr * wd) if mode == "decoupled" else w
        step = np.zeros_like(w)
        norms, ratios = [], []
        for c, u in directions:
            if mode == "inside":
                u = u + wd * w
            r = ratio(norm(base), norm(u), 1.0, self.bounds, self.cap) if self.adapts[i] else 1.0
            norms.append(norm(u))
            ratios.append(r)
            step += c * r * u
        # What the optimizer records for this layer (LayerwiseOptimizer.layer_statistics).
        self.statistics[i] = (norm(base), norms, ratios)
        self.w[i] = self.store(base - lr * step)


class LAMBReference(Reference):
    def __init__(self, weights, lr, beta_1=0.9, beta_2=0.999, eps=1e-6, mode="inside",
                 bias_correction=True, nesterov=None, **kw):
        super().__init__(weights, lr, **kw)
        self.b1, self.b2, self.eps, self.mode = beta_1, beta_2, eps, mode
        self.bc, self.nesterov = bias_correction, nesterov
        self.m = [np.zeros_like(w) for w in self.w]
        self.v = [np.zeros_like(w) for w in self.w]

    def step(self, grads):
        lr = self.lr_at(self.t)
        self.t += 1
        t, b1, b2 = self.t, self.b1, self.b2
        for i, g in enumerate(grads):
            g = np.array(g, np.float64)
            if self.mode == "l2":
                g = g + self.rate(i) * self.w[i]
            self.m[i] = self.store(b1 * self.m[i] + (1 - b1) * g)
            self.v[i] = self.store(b2 * self.v[i] + (1 - b2) * g * g)
            m, v = self.m[i], self.v[i]
            if self.nesterov and self.bc:
                m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
            elif self.nesterov:
                m_hat = b1 * m + (1 - b1) * g
            else:
                m_hat = m / (1 - b1**t) if self.bc else m
            if self.nesterov == "nn-lamb" and self.bc:
                v_hat = b2 * v / (1 - b2 ** (t + 1)) + (1 - b2) * g * g / (1 - b2**t)
            elif self.nesterov == "nn-lamb":
                v_hat = b2 * v + (1 - b2) * g * g
            else:
                v_hat = v / (1 - b2**t) if self.bc else v
            u = m_hat / (np.sqrt(v_hat) + self.eps)
            self.layerwise(i, [(1.0, u)], lr, self.mode)


class LARSReference(Reference):
    def __init__(self, weights, lr, momentum=0.9, eta=None, eps=0.0, nesterov=False,
                 form="classic", **kw):
        super().__init__(weights, lr, **kw)
        self.mu, self.eps, self.nesterov, self.form = momentum, eps, nesterov, form
        self.eta = eta if eta is not None else (0.001 if form == "classic" else 1.0)
        self.buf = [np.zeros_like(w) for w in self.w]

    def step(self, grads):
        lr = self.lr_at(self.t)
        self.t += 1
        for i, g in enumerate(grads):
            g = np.array(g, np.float64)
            w, wd = self.w[i], self.rate(i)
            gd = g + wd * w
            if self.form == "paper":
                self.buf[i] = self.store(self.mu * self.buf[i] + (1 - self.mu) * gd)
                u = self.mu * self.buf[i] + (1 - self.mu) * gd if self.nesterov else self.buf[i]
                r = ratio(norm(w), norm(u), self.eta, self.bounds, self.cap) if self.adapts[i] else 1.0
                self.w[i] = self.store(w - lr * r * u)
                continue
            trust = 1.0
            if self.adapts[i]:
                trust = ratio(norm(w), norm(g), self.eta, self.bounds, self.cap,
                              offset=wd * norm(w) + self.eps)
            local = lr * trust
            self.buf[i] = self.store(self.mu * self.buf[i] + local * gd)
            if self.nesterov:
                self.w[i] = self.store(w - (self.mu * self.buf[i] + local * gd))
            else:
                self.w[i] = self.store(w - self.buf[i])


class LANSReference(Reference):
    def __init__(self, weights, lr, beta_1=0.9, beta_2=0.999, eps=1e-6, mode="inside",
                 normalize_grad=True, bias_correction=True, **kw):
        super().__init__(weights, lr, **kw)
        self.b1, self.b2, self.eps, self.mode = beta_1, beta_2, eps, mode
        self.normalize, self.bc = normalize_grad, bias_correction
        self.m = [np.zeros_like(w) for w in self.w]
        self.v = [np.zeros_like(w) for w in self.w]

    def step(self, grads):
        lr = self.lr_at(self.t)
        self.t += 1
        t, b1, b2 = self.t, self.b1, self.b2
        for i, g in enumerate(grads):
            g = np.array(g, np.float64)
            if self.normalize:
                g = g / (norm(g) + self.eps)
            if self.mode == "l2":  # After the normalization (the authors' kernel).
                g = g + self.rate(i) * self.w[i]
            self.m[i] = self.store(b1 * self.m[i] + (1 - b1) * g)
            self.v[i] = self.store(b2 * self.v[i] + (1 - b2) * g * g)
            m_hat = self.m[i] / (1 - b1**t) if self.bc else self.m[i]
            v_hat = self.v[i] / (1 - b2**t) if self.bc else self.v[i]
            d = np.sqrt(v_hat) + self.eps
            self.layerwise(i, [(b1, m_hat / d), (1 - b1, g / d)], lr, self.mode)


class LARCReference(Reference):
    """NVIDIA apex's LARC wrapped around momentum SGD (``torch.optim.SGD``, dampening 0).

    Per layer, at the step's learning rate ``lr``:

        local = min(eta * phi(||w||) / (||g|| + wd ||w|| + eps), cap)
        clip:  local = min(local / lr, 1)      (so lr * local = min(lr * local_unclipped, lr))
        d = local * (g + wd * w)
        buf = momentum * buf + d               (the first step gives buf = d: buf starts at 0)
        w = w - lr * (d + momentum * buf  if nesterov else  buf)

    tf_lamb's zero-norm rule: where ``||w|| == 0`` or ``||g|| == 0`` (or the layer is
    excluded from adaptation), ``local = 1`` with no clip and ``wd * w`` is still added.
    ``zero_rule="apex"`` gives apex's rule instead (such a layer's gradient is used as it
    is: no ratio and no weight decay), for the test that documents the difference.

    ``branches`` records ``(step, layer, clipped)`` for every adapted, nonzero layer in clip
    mode (``clipped``: ``local / lr >= 1``, the step used ``lr`` itself).
    """

    def __init__(self, weights, lr, momentum=0.9, eta=0.02, clip=True, eps=1e-8, nesterov=False,
                 zero_rule="tf_lamb", **kw):
        super().__init__(weights, lr, **kw)
        self.mu, self.eta, self.clip, self.eps, self.nesterov = momentum, eta, clip, eps, nesterov
        self.zero_rule = zero_rule
        self.buf = [np.zeros_like(w) for w in self.w]
        self.trust = [None] * len(self.w)  # Each layer's last ratio before the clip.
        self.local = [None] * len(self.w)  # ... and after it (lr * local: the layer's rate).
        self.branches = []

    def step(self, grads):
        lr = self.lr_at(self.t)
        self.t += 1
        for i, g in enumerate(grads):
            g = np.array(g, np.float64)
            w, wd = self.w[i], self.rate(i)
            w_norm, g_norm = norm(w), norm(g)
            zero = w_norm == 0.0 or g_norm == 0.0
            local = 1.0
            if self.adapts[i] and not zero:
                local = ratio(w_norm, g_norm, self.eta, self.bounds, self.cap,
                              offset=wd * w_norm + self.eps)
                self.trust[i] = local
                if self.clip:
                    clipped = lr == 0.0 or local >= lr  # local / lr >= 1; lr 0: apex's 1.
                    self.branches.append((self.t, i, clipped))
                    local = 1.0 if clipped else local / lr
            else:
                self.trust[i] = None
            if zero and self.adapts[i] and self.zero_rule == "apex":
                d = g
            else:
                d = local * (g + wd * w)
            self.local[i] = local
            self.buf[i] = self.store(self.mu * self.buf[i] + d)
            direction = d + self.mu * self.buf[i] if self.nesterov else self.buf[i]
            self.w[i] = self.store(w - lr * direction)
