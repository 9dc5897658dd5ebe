"""ABC-shaped chains (Bachman & Precup 2015, "Variational Generative Stochastic Networks with
Collaborative Shaping"; their code: github Philip-Bachman/ICML-2015, VCGLoop.py): a variational
autoencoder unrolled into a Markov chain, trained with a guide that pushes the chain away from
regions where the guide can tell its states from the data."""

from __future__ import annotations

import time

import numpy as np

from . import _backend, _checks, _model
from ._model import ParamModel
from ._progress import progress_bar
from .optim import Adam, as_optimizer
from .training import History, TrainingDiverged, check_last_step

# Chain steps per training batch (the constructor's chain_len and generator_loss_and_grad's):
# every step's activations are kept for the backward pass.
MAX_CHAIN_LEN = 1000


class ShapedChain(ParamModel):
    """A VAE chain with collaborative (ABC) shaping.

    The chain (csrc/walkback/shaped_chain.h has the equations): x_0 = data;
    z_i ~ q(z | x_i) = N(mu(x_i), diag sigma^2(x_i)), reparametrized; x_{i+1} = the decoder's
    mean, a differentiable function of z_i; the networks are shared across steps.

    The generator's loss per example: sum_i decay^i [NLL(t_i | x_{i+1}) + kld KL(q(z | x_i) ||
    N(0, I))], with t_i = x_0 (``target="walkback"``) or x_i (``"walkout"``),
    plus ``shaping`` * sum_j [relu(-D(x_j)) + relu(-D(x_j))^2] / 2, where the guide D is a
    classifier of data (positive) against chain states trained by the logistic loss
    softplus(-D(data)) + softplus(D(states)). ``fit`` pretrains a plain VAE (one step, no
    shaping), then trains generator and guide together, each step clipping each one's
    gradient to a global norm of ``clip`` (10, as the original).

    Defaults: chain_len 6 and the 25x shaping weight are the issue's reading of the original
    (MNIST); relu units, decay 1, the guide's size (500) and Adam are ours.

    Args:
        visible: D, data units in [0, 1] (Bernoulli means).
        latent: size of z.
        hidden: the encoder's and the decoder's hidden layers.
        guide_hidden: the guide's hidden layers.
        chain_len: chain steps per training example.
        kld: the KL term's weight.
        decay: weight decay^i of step i's terms.
        shaping: the shaping term's weight (0: an unshaped VAE chain).
        target: "walkback" (reconstruct x_0 at every step) or "walkout" (the previous state).
    """

    def __init__(
        self,
        visible,
        latent=50,
        hidden=(1000, 1000),
        guide_hidden=(500,),
        chain_len=6,
        kld=1.0,
        decay=1.0,
        shaping=25.0,
        target="walkback",
        activation="relu",
        seed=0,
        dtype=np.float32,
    ):
        self.visible = _checks.check_int("visible", visible, 1, 2**31 - 1)
        self.latent = _checks.check_int("latent", latent, 1, 2**31 - 1)
        self.hidden = _checks.check_widths("hidden", hidden)
        self.guide_hidden = _checks.check_widths("guide_hidden", guide_hidden)
        self.chain_len = _checks.check_int("chain_len", chain_len, 1, MAX_CHAIN_LEN)
        self.kld = self._nonneg("kld", kld)
        self.decay = self._nonneg("decay", decay)
        self.shaping = self._nonneg("shaping", shaping)
        if target not in ("walkback", "walkout"):
            raise ValueError(f"target: expected 'walkback' or 'walkout', got {target!r}")
        self.target = target
        self.activation = activation
        self._act = _checks.check_activation(activation)
        self.seed = _checks.check_seed("seed", seed)
        self.dtype = _checks.check_dtype(dtype)
        self._rng = np.random.default_rng(self.seed)
        self._params = {} if _model.loading() else self._glorot_params()

    @staticmethod
    def _nonneg(name, v) -> float:
        v = _checks.check_float(name, v)
        if not (v >= 0 and np.isfinite(v)):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v}")
        return v

    def _layers(self, net):
        if net == "enc":
            sizes = [self.visible, *self.hidden, 2 * self.latent]
        elif net == "dec":
            sizes = [self.latent, *self.hidden, self.visible]
        else:
            sizes = [self.visible, *self.guide_hidden, 1]
        return list(zip(sizes[:-1], sizes[1:], strict=True))

    def param_shapes(self) -> dict:
        shapes = {}
        for net in ("enc", "dec", "guide"):
            layers = self._layers(net)
            for i, (a, b) in enumerate(layers):
                tag = "head" if i == len(layers) - 1 else str(i)
                shapes[f"{net}_W{tag}"] = (a, b)
                shapes[f"{net}_b{tag}"] = (b,)
        return shapes

    def _names(self, net):
        n = len(self._layers(net))
        tags = [str(i) for i in range(n - 1)] + ["head"]
        return [f"{net}_{k}{t}" for t in tags for k in ("W", "b")]

    def _list(self, net, source=None):
        source = self._params if source is None else source
        return [source[k] for k in self._names(net)]

    def _cfg(self, steps, seed, shaping, first_chain=0) -> dict:
        return dict(
            visible=self.visible,
            latent=self.latent,
            kld=self.kld,
            decay=self.decay,
            shaping=float(shaping),
            walkback=self.target == "walkback",
            activation=self._act,
            steps=int(steps),
            seed=int(seed),
            first_chain=int(first_chain),
        )

    def _x(self, name, x) -> np.ndarray:
        a = _checks.as_state(name, x, self.dtype, self.visible)
        if not isinstance(a, np.ndarray):
            raise NotImplementedError("ShapedChain runs on the CPU only in this version")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(f"{name}: expected values in [0, 1] (Bernoulli means)")
        return a

    # ------------------------------------------------------------------ losses
    def generator_loss_and_grad(self, x, chain_len=None, shaping=None, seed=None, states=False):
        """The generator's loss on x and its gradients for the encoder and the decoder.

        Returns (parts, grads[, states]): parts a dict of the NLL, KL and shaping terms (each
        weighted, summed over steps, mean per example) and their total; grads named like
        get_params() (enc_* and dec_*); states (chain_len, n, D) the chain's x_1 .. x_S."""
        x = self._x("x", x)
        steps = (
            self.chain_len
            if chain_len is None
            else _checks.check_int("chain_len", chain_len, 1, MAX_CHAIN_LEN)
        )
        shaping = self.shaping if shaping is None else self._nonneg("shaping", shaping)
        parts, grads, st = self._generator_call(x, steps, shaping, seed, states, guide=False)
        return (parts, grads, st) if states else (parts, grads)

    def loss_and_grads(self, x, seed=None):
        """One training step's losses and gradients for both networks, as ``fit`` takes it in
        the shaping phase: the generator's (``chain_len`` steps, the model's shaping weight)
        and the guide's on x and this call's chain states, all from the same parameters.

        The numbers of ``generator_loss_and_grad(x, states=True)`` followed by
        ``guide_loss_and_grad(x, states)``, but the guide's forward pass over the data and the
        chain states runs once, shared by the shaping term and the guide's own loss. The
        guide's loss and gradients are bitwise the same; the shaping term and the generator's
        gradients agree to rounding (the shared pass multiplies more rows at once, and the
        BLAS may round some products differently: 2e-8 relative in float32, measured).

        Returns (parts, grads): parts as generator_loss_and_grad's plus "guide" (the guide's
        loss, not part of "total"); grads for every parameter (enc_*, dec_*, guide_*)."""
        x = self._x("x", x)
        parts, grads, _ = self._generator_call(
            x, self.chain_len, self.shaping, seed, states=False, guide=True
        )
        return parts, grads

    def _generator_call(self, x, steps, shaping, seed, states, guide, out=None):
        """The C++ generator call on a checked x: (parts, grads, states or None), with the
        guide's step too when `guide` (parts["guide"], guide_* in grads). ``out``: arrays
        like the parameters (by name) that receive the gradients, kept by fit across batches
        (fresh ones per batch were page-faulted in every time)."""

        def buffers(kind):
            if out is None:
                return [np.empty_like(p) for p in self._list(kind)]
            return [out[k] for k in self._names(kind)]

        genc, gdec = buffers("enc"), buffers("dec")
        gguide = buffers("guide") if guide else None
        st = np.empty((steps, len(x), self.visible), self.dtype) if states else None
        nll, kl, shape, guide_loss = _backend.cpu().shaped_generator(
            x,
            self._list("enc"),
            self._list("dec"),
            self._list("guide"),
            self._cfg(steps, self._seed(seed), shaping),
            genc,
            gdec,
            st,
            gguide,
        )
        names = self._names("enc") + self._names("dec")
        arrays = genc + gdec
        parts = {"nll": nll, "kl": kl, "shaping": shape, "total": nll + kl + shape}
        if guide:
            names, arrays = names + self._names("guide"), arrays + gguide
            parts["guide"] = guide_loss
        return parts, dict(zip(names, arrays, strict=True)), st

    def guide_loss_and_grad(self, x, states):
        """The guide's logistic loss (data positive, chain states negative) and its
        gradients (guide_*)."""
        x = self._x("x", x)
        if _backend.is_gpu_array(states):
            raise NotImplementedError("ShapedChain runs on the CPU only in this version")
        st = np.asarray(states)
        if st.ndim not in (2, 3) or st.shape[-1] != self.visible:
            raise ValueError(
                f"states: expected shape (m, {self.visible}) or (steps, n, {self.visible}), "
                f"got {st.shape}"
            )
        st = self._x("states", st.reshape(-1, self.visible))
        g = [np.empty_like(p) for p in self._list("guide")]
        loss = _backend.cpu().shaped_guide(
            x,
            st,
            self._list("enc"),
            self._list("dec"),
            self._list("guide"),
            self._cfg(1, 0, 0.0),
            g,
        )
        return loss, dict(zip(self._names("guide"), g, strict=True))

    # ------------------------------------------------------------------ training
    def fit(
        self,
        x,
        pretrain_epochs=10,
        shaping_epochs=10,
        batch_size=100,
        optimizer=None,
        guide_optimizer=None,
        clip=10.0,
        progress=True,
        seed=None,
    ):
        """Pretrains a plain VAE (one step, no shaping) for ``pretrain_epochs``, then trains
        the chain (``chain_len`` steps, shaping weight ``shaping``) and the guide together for
        ``shaping_epochs``. Default optimizers: Adam(1e-3) each. Returns a History whose
        train_loss is the generator's total per epoch; ``history.guide_loss`` and
        ``history.shaping_loss`` hold the rest (None during pretraining).

        Raises:
            TrainingDiverged naming the epoch and batch where the loss stopped being finite;
            the model keeps the last parameters that gave a finite loss, as the other models'
            fit does."""
        x = self._x("x", x)
        pre = _checks.check_int("pretrain_epochs", pretrain_epochs, 0)
        shp = _checks.check_int("shaping_epochs", shaping_epochs, 0)
        batch_size = _checks.check_int("batch_size", batch_size, 1)
        clip = self._nonneg("clip", clip)
        opt_g = as_optimizer(optimizer, Adam(1e-3))
        opt_d = as_optimizer(guide_optimizer, Adam(1e-3))
        opt_g._bind(self)
        opt_d._bind(self)
        rng = np.random.default_rng(self._seed(seed))
        hist = History()
        hist.guide_loss, hist.shaping_loss = [], []
        n = len(x)
        batches = (n + batch_size - 1) // batch_size
        bar = progress_bar((pre + shp) * batches, progress, "training", "batch")
        gen_names = self._names("enc") + self._names("dec")
        guide_names = self._names("guide")
        # backups[i % 2]: every parameter before optimizer step i, written by the optimizers in
        # the same pass as the update. The guide's are written only while it trains; during
        # pretraining it does not move, so its first copy stays right. Step i's loss is read
        # before step i: a non-finite one restores the parameters before step i - 1, the last
        # ones with a finite loss.
        backups = [{k: v.copy() for k, v in self._params.items()} for _ in range(2)]
        grads = {k: np.empty_like(v) for k, v in self._params.items()}
        end_state = ({}, {})  # both optimizers before each epoch's last step
        step = 0
        try:
            for epoch in range(pre + shp):
                shaping_phase = epoch >= pre
                t0 = time.perf_counter()
                order = rng.permutation(n)
                tot, tot_d, tot_s = 0.0, 0.0, 0.0
                for b in range(batches):
                    xb = np.ascontiguousarray(x[order[b * batch_size : (b + 1) * batch_size]])
                    s = int(rng.integers(0, 2**63))
                    if shaping_phase:  # loss_and_grads, into the kept gradients
                        parts, g, _ = self._generator_call(
                            xb, self.chain_len, self.shaping, s, False, True, out=grads
                        )
                    else:  # generator_loss_and_grad(chain_len=1, shaping=0)
                        parts, g, _ = self._generator_call(xb, 1, 0.0, s, False, False, out=grads)
                    # The guide's loss stays outside the total when shaping is 0: check both.
                    what, value = "loss", parts["total"]
                    if shaping_phase and np.isfinite(value) and not np.isfinite(parts["guide"]):
                        what, value = "guide's loss", parts["guide"]
                    if not np.isfinite(value):
                        if step > 0:
                            for k, v in backups[(step - 1) % 2].items():
                                np.copyto(self._params[k], v)
                            # Their moments may come from the step that broke them.
                            opt_g._reset_if_poisoned()
                            opt_d._reset_if_poisoned()
                        raise TrainingDiverged(
                            f"fit: the {what} became {value} at epoch {epoch + 1}, "
                            f"batch {b + 1}; the parameters were restored to the last ones "
                            "with a finite loss (try a smaller learning rate)"
                        )
                    backup = backups[step % 2]
                    if b == batches - 1:  # what the end-of-epoch check would restore
                        opt_g._save_state(end_state[0])
                        opt_d._save_state(end_state[1])
                    if shaping_phase:
                        opt_d.step(
                            {k: self._params[k] for k in guide_names},
                            {k: g[k] for k in guide_names},
                            max_grad_norm=clip,
                            backup=backup,
                        )
                        tot_d += parts["guide"] * len(xb)
                        tot_s += parts["shaping"] * len(xb)
                    opt_g.step(
                        {k: self._params[k] for k in gen_names},
                        {k: g[k] for k in gen_names},
                        max_grad_norm=clip,
                        backup=backup,
                    )
                    step += 1
                    tot += parts["total"] * len(xb)
                    bar.update(1)
                if step:
                    check_last_step(
                        self._params,
                        backups[(step - 1) % 2],
                        epoch,
                        [(opt_g, end_state[0]), (opt_d, end_state[1])],
                    )
                hist.train_loss.append(tot / n)
                hist.valid_loss.append(None)
                hist.guide_loss.append(tot_d / n if shaping_phase else None)
                hist.shaping_loss.append(tot_s / n if shaping_phase else None)
                hist.seconds.append(time.perf_counter() - t0)
        finally:
            bar.close()
        return hist

    # ------------------------------------------------------------------ sampling
    def sample(self, n, steps=None, every=None, seed=None, first_chain=0):
        """n chains from prior draws z ~ N(0, I): x_1 = the decoder's mean of z, then
        ``steps`` - 1 more steps (default chain_len). Returns the final states (n, D), or with
        ``every`` = k the states after every k-th step, (steps // k, n, D). Chain c draws the
        random stream's chain first_chain + c, so a run split over calls draws what one call
        draws."""
        n = _checks.check_int("n", n, 1, 2**31 - 1)
        steps = self.chain_len if steps is None else _checks.check_int("steps", steps, 1, 2**31 - 1)
        every = 0 if every is None else _checks.check_int("every", every, 1, steps)
        first_chain = _checks.check_first_chain(first_chain, n)
        records = steps // every if every else 1
        out = np.empty((records, n, self.visible), self.dtype)
        _backend.cpu().shaped_sample(
            self._list("enc"),
            self._list("dec"),
            self._cfg(steps, 0, 0.0),
            n,
            steps,
            every,
            self._seed(seed),
            first_chain,
            out,
        )
        return out if every else out[0]

    # ------------------------------------------------------------------ files
    def to_config(self) -> dict:
        return {
            "visible": self.visible,
            "latent": self.latent,
            "hidden": list(self.hidden),
            "guide_hidden": list(self.guide_hidden),
            "chain_len": self.chain_len,
            "kld": self.kld,
            "decay": self.decay,
            "shaping": self.shaping,
            "target": self.target,
            "activation": self.activation,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }

    def __repr__(self) -> str:
        return (
            f"ShapedChain(visible={self.visible}, latent={self.latent}, hidden={self.hidden}, "
            f"chain_len={self.chain_len}, shaping={self.shaping}, target={self.target!r})"
        )
