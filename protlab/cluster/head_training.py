"""The SCAN heads' training passes: warm start towards the graph's families, SCAN epochs,
self-labelling, all drawing batches from one seeded generator (alike on every rank)."""
from __future__ import annotations

from itertools import accumulate
from pathlib import Path

from protlab.cluster.distributed import my_share, total_over_ranks, wrap
from protlab.cluster.heads import scan_loss, self_label_loss, strong_view
from protlab.cluster.neighbors import NeighborGraph
from protlab.core.runtime import DistEnv
from protlab.core.training_log import TrainingLog

FAMILY_WEIGHT_POWER = 0.75  # heads' cross-entropy towards the families: a family weighs size ** -this
LOG_NAME = "scan"  # the heads' training log: its lines read "[scan] ..."
PASSES = ("warm", "scan", "self_label")


def batches(perm, batch_size: int, smallest: int):
    """Consecutive batches of ``perm``; a last batch under ``smallest`` rows (batch norm needs
    2 on every rank) is left out."""
    for start in range(0, len(perm), batch_size):
        idx = perm[start:start + batch_size]
        if len(idx) >= smallest:
            yield idx


class HeadTraining:
    """The three passes of the heads' training (warm start, SCAN epochs, self-labelling) over
    one seeded generator, each drawing its batches from :func:`batches`. Each pass can start
    at a later epoch (``first``: a resumed run) and calls ``after_epoch(pass, epochs done,
    **its record so far)`` after each epoch (where a resumable run saves its state).

    Progress goes through one :class:`~protlab.core.training_log.TrainingLog` for the whole
    training (:meth:`open_log`): its epochs are counted across the passes (warm start first),
    so a resumed run keeps the records up to its saved pass and epoch. Each epoch's record holds
    its ``pass``, ``pass_epoch`` and what the pass measures anyway: the summed ``loss`` of a
    SCAN epoch, the ``confident_fraction`` of a self-labelling one (a warm-start epoch's, no
    more). With ``progress`` a bar, the passes' starts and about ten records are printed."""

    def __init__(self, config: dict, family_labels, bare, x, graph: NeighborGraph, gen, order, n_val: int,
                 device: str, env: DistEnv, *, progress: bool = False):
        import torch

        self.cfg, self.bare, self.x, self.gen, self.order = config, bare, x, gen, order
        self.device, self.env, self.progress = device, env, progress
        self.log: TrainingLog | None = None
        self._epochs: dict[str, int] = {}  # each pass's epochs
        self._before: dict[str, int] = {}  # the epochs of the passes before each (its records' offset)
        self.knn, self.counts = torch.from_numpy(graph.knn), torch.from_numpy(graph.counts)
        self.val, self.train = order[:n_val], order[n_val:]
        self.n = len(x)
        self.bs = max(2 * env.world, min(self.cfg["batch_size"], len(self.train)))
        self.smallest = 2 * env.world  # every rank needs 2 rows for batch norm
        self.model = wrap(bare, env, device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg["lr"], weight_decay=self.cfg["weight_decay"])
        labels = family_labels
        self.targets = self.prior = self.balance = None
        if labels is not None:  # cluster sizes pulled towards the families', not equal
            self.targets = torch.from_numpy(labels)
            sizes = torch.bincount(self.targets, minlength=self.cfg["n_clusters"]).float()
            self.prior = self.on(sizes / self.n)
            # rare families weigh more in the cross-entropy towards the families: with equal
            # weights the big families' gradients leave the heads unsure of the small ones
            balance = sizes.clamp_min(1.0) ** -FAMILY_WEIGHT_POWER
            self.balance = self.on(balance * self.n / (balance * sizes).sum())

    def on(self, t):
        return t.to(self.device, non_blocking=True)

    def _steps_per_epoch(self, rows: int) -> int:
        return max(1, -(-rows // self.bs))

    def _capped(self, epochs: int, rows: int) -> int:
        """``epochs`` over ``rows`` proteins, fewer on large data so that the pass takes at most
        ``max_steps`` batches (at least one epoch; 0: no cap)."""
        cap = self.cfg.get("max_steps", 0)
        if epochs <= 0 or cap <= 0:
            return max(0, epochs)
        return max(1, min(epochs, -(-cap // self._steps_per_epoch(rows))))

    def scan_epoch_count(self) -> int:
        """``epochs``, or more on small data so that the heads see ``min_steps`` batches, or fewer
        on large data so that they see at most ``max_steps`` (0: none)."""
        cfg = self.cfg
        steps_per_epoch = self._steps_per_epoch(len(self.train))
        wanted = max(cfg["epochs"], -(-cfg["min_steps"] // steps_per_epoch)) if cfg["epochs"] > 0 else 0
        return self._capped(wanted, len(self.train))

    def pass_epochs(self) -> dict[str, int]:
        """Each pass's epochs, in the order they run (no warm start without the graph's families)."""
        warm = max(0, self.cfg["warm_epochs"]) if self.targets is not None else 0
        return dict(zip(PASSES, (warm, self.scan_epoch_count(), self._capped(self.cfg["self_label_epochs"], self.n))))

    def open_log(self, path: str | Path | None, where: dict) -> TrainingLog:
        """The training's log (``path``: its JSONL file, None: none), starting after ``where``
        (``{"pass", "epoch"}``: the epochs done; a resumed run keeps the records up to there)."""
        self._epochs = self.pass_epochs()
        self._before = dict(zip(PASSES, accumulate(self._epochs.values(), initial=0)))
        total = sum(self._epochs.values())
        self.log = TrainingLog(LOG_NAME, unit="epoch", total=total, path=path,
                               start=self._before[where["pass"]] + where["epoch"], every=max(1, total // 10),
                               bar=self.progress, main=self.env.is_main)
        return self.log

    def _starting(self, pass_name: str, first: int, what: str) -> None:
        if self.log is not None and self.progress and first < self._epochs[pass_name]:
            self.log.say(f"{what}: epochs {first + 1}-{self._epochs[pass_name]} of {self._epochs[pass_name]}")

    def _epoch_done(self, pass_name: str, epoch: int, values: dict, after_epoch, **so_far) -> None:
        """The epoch's record in the log (before ``after_epoch`` saves the state: a run killed
        between the two resumes before this epoch and drops its record), then ``after_epoch``."""
        if self.log is not None:
            last = epoch == self._epochs[pass_name]  # each pass's last epoch is printed
            self.log.record(self._before[pass_name] + epoch, {"pass": pass_name, "pass_epoch": epoch, **values},
                            line=(last or None) if self.progress else False)
            self.log.advance(1, **{k: f"{v:.4g}" for k, v in values.items()})
        if after_epoch is not None:
            after_epoch(pass_name, epoch, **so_far)

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()

    def step(self, loss) -> None:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def family_loss(self, outputs, idx):
        import torch

        goal = self.on(self.targets[idx])
        return sum(torch.nn.functional.cross_entropy(o[:len(idx)], goal, weight=self.balance) for o in outputs)

    def warm_start(self, first: int = 0, after_epoch=None) -> None:
        """Cross-entropy towards the graph's families for ``warm_epochs`` (homology graphs only)."""
        import torch

        if self.targets is None:
            return
        self._starting("warm", first, "warm start towards the graph's families")
        for epoch in range(first, self.cfg["warm_epochs"]):  # heads start from the graph's families
            for idx in batches(self.order[torch.randperm(self.n, generator=self.gen)], self.bs, self.smallest):
                idx = my_share(self.env, idx)
                self.step(self.family_loss(self.model(self.on(self.x[idx])), idx))
            self._epoch_done("warm", epoch + 1, {}, after_epoch)

    def scan_epochs(self, first: int = 0, history: list[float] | None = None, after_epoch=None) -> list[float]:
        """SCAN's loss over anchors and a sampled neighbour each; on a homology graph it keeps the
        cross-entropy towards the families (``anchor_weight``). Returns each epoch's summed loss."""
        import torch

        cfg, env = self.cfg, self.env
        anchored = self.targets is not None and cfg["anchor_weight"] > 0
        # the size pull: none when the cross-entropy towards the families holds the sizes (a
        # batch's mean p caps a family rarer than 1 / batch_size near prior x batch_size, so such
        # families would never be learnt)
        pull = 0.0 if anchored else cfg["entropy_weight"]
        history = list(history or [])
        self._starting("scan", first, "SCAN")
        for epoch in range(first, self.scan_epoch_count()):
            self.model.train()
            total = 0.0
            for anchors in batches(self.train[torch.randperm(len(self.train), generator=self.gen)], self.bs,
                                   self.smallest):
                pick = (torch.rand(len(anchors), generator=self.gen) * self.counts[anchors]).long()
                neighbors = self.knn[anchors, pick]  # drawn for the whole batch: generators stay alike
                anchors, neighbors = my_share(env, anchors), my_share(env, neighbors)
                out = self.model(self.on(torch.cat([self.x[anchors], self.x[neighbors]])))
                loss = sum(scan_loss(o[:len(anchors)], o[len(anchors):], entropy_weight=pull, prior=self.prior)[0]
                           for o in out)
                if anchored:  # stay near the graph's families
                    loss = loss + cfg["anchor_weight"] * self.family_loss(out, anchors)
                self.step(loss)
                total += float(loss.detach())
            history.append(total)
            self._epoch_done("scan", epoch + 1, {"loss": total}, after_epoch, history=history)
        return history

    def self_label(self, first: int = 0, confident: list[float] | None = None, optimizer_state: dict | None = None,
                   after_epoch=None) -> list[float]:
        """Self-labelling of the kept head on its confident proteins, with the cross-entropy towards
        the families (``anchor_weight``) on a homology graph; each epoch's confident share."""
        import torch

        cfg, env, bare = self.cfg, self.env, self.bare
        self.model = wrap(bare, env, self.device)
        confident = list(confident or [])
        epochs = self.pass_epochs()["self_label"]
        if epochs <= 0:
            return confident
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg["lr"] * 0.1, weight_decay=cfg["weight_decay"])
        if optimizer_state is not None:
            self.opt.load_state_dict(optimizer_state)
        anchored = self.targets is not None and cfg["anchor_weight"] > 0
        self._starting("self_label", first, "self-labelling the kept head")
        for epoch in range(first, epochs):
            n_conf = 0
            for idx in batches(self.order[torch.randperm(self.n, generator=self.gen)], self.bs, self.smallest):
                views = strong_view(self.x[idx], generator=self.gen)  # the whole batch's noise: generators stay alike
                idx, views = my_share(env, idx), my_share(env, views)
                bare.eval()
                with torch.no_grad():
                    weak = bare(self.on(self.x[idx]))[0]
                self.model.train()
                strong = self.model(self.on(views))[0]
                loss, c = self_label_loss(weak, strong, threshold=cfg["confidence"], balanced=self.prior is None)
                c = total_over_ranks(env, c)  # every rank steps, or none does
                n_conf += c
                if anchored:  # the heads' own confident labels would pull a small family's members
                    # into a giant neighbour; the families keep them where the graph put them
                    loss = (loss if c else 0.0) + cfg["anchor_weight"] * self.family_loss([strong], idx)
                if anchored or c:
                    self.step(loss)
            confident.append(n_conf / self.n)
            self._epoch_done("self_label", epoch + 1, {"confident_fraction": confident[-1]}, after_epoch,
                             confident=confident)
        return confident
