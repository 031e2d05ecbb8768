"""Evolutionary timestep search (AutoDiffusion, Li et al. ICCV 2023, arXiv 2309.10438; decisions in docs/search.md).

For a fixed model, sampler and NFE budget, find the ``nfe`` grid sigmas (genes, see ``genes``) that minimise a
fitness (lower is better; see ``fitness``). One generation:

1. evaluate every new candidate **and the current elites** on the generation's noise draw (common random numbers:
   all candidates of a generation see the same noise, so their ranking is not noise; elites are re-scored on the new
   draw, so an elite that was lucky once does not stay on top forever);
2. elitist archive: the ``top_k`` best of (elites ∪ new candidates) on this draw;
3. breed the next population: ``mutations`` children of random elites, ``crossovers`` children of two random elites
   (rank-aligned uniform crossover; children that repeat a step are rejected), the rest fresh random candidates.
   A child that was already evaluated is re-drawn (up to 10 tries, as in the official code).

Generation 0 holds the uniform ("simple") and Karras lists, mutations of both and random candidates. With
``resample_noise=False`` every generation uses draw 0, the fitness is deterministic and elites cost nothing.

Determinism: one ``numpy.random.Generator(PCG64(seed))`` drives every choice; the fitness gets only ``(sigmas,
draw)``. The whole search state (population, archive, evaluation cache, generator state, history) is a JSON document
(``state_doc``; ``restore`` it into a search with the same settings), so an interrupted search resumes exactly
where it stopped and ends with the result an uninterrupted run gives (see ``state`` for the file format).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..errors import ScheduleError
from .genes import GeneSpace, crossover, karras_genes, mutate, nearest_genes, random_genes, uniform_genes
from .state import STATE_FORMAT, check_state, make_state_doc, save_state

__all__ = ["EvolutionConfig", "EvolutionSearch", "SearchResult", "evolve"]

_TRIES = 10


@dataclass(frozen=True)
class EvolutionConfig:
    """Hyper-parameters (the official scripts use population 50, top-k 10, 25 mutations, 10-15 crossovers,
    m_prob 0.25 and 10 epochs on a GPU; the defaults here are sized for a CPU)."""

    population: int = 16
    top_k: int = 4
    mutations: int = 8
    crossovers: int = 4
    m_prob: float = 0.25
    generations: int = 8
    resample_noise: bool = True

    def check(self) -> EvolutionConfig:
        def whole(name, lo):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ScheduleError(f"{name}={v!r} must be a whole number >= {lo}; {_FIX[name]}")

        whole("population", 4)
        whole("top_k", 1)
        whole("mutations", 0)
        whole("crossovers", 0)
        whole("generations", 1)
        if self.top_k > self.population:
            raise ScheduleError(f"top_k={self.top_k} is larger than population={self.population}; "
                                "keep top_k at about a quarter of the population.")
        if self.mutations + self.crossovers > self.population:
            raise ScheduleError(f"mutations + crossovers = {self.mutations + self.crossovers} exceeds "
                                f"population={self.population}; lower them so some random candidates remain.")
        if not (isinstance(self.m_prob, (int, float)) and 0 < self.m_prob <= 1):
            raise ScheduleError(f"m_prob={self.m_prob!r} must be in (0, 1]; 0.25 is the paper's value.")
        return self


_FIX = {
    "population": "use at least 4 candidates per generation (16 is a good CPU default).",
    "top_k": "keep at least the best candidate (4 is a good default).",
    "mutations": "pass 0 or more.",
    "crossovers": "pass 0 or more.",
    "generations": "run at least one generation.",
}


@dataclass
class SearchResult:
    genes: tuple[int, ...]
    sigmas: torch.Tensor       # float64, descending, ending in 0
    fitness: float             # of the best candidate on the last generation's draw
    history: list[dict] = field(default_factory=list)
    evaluations: int = 0       # fitness calls (cache hits excluded)


def _score(v: float | None) -> float:
    return math.inf if v is None or not math.isfinite(v) else float(v)


class EvolutionSearch:
    """One search; ``run()`` it, or ``restore(state)`` a saved one first to resume it.

    Args:
        space: the gene grid (``GeneSpace(kind)``).
        nfe: steps per candidate (= model calls for one-call-per-step samplers such as euler and dpmpp_2m).
        fitness: ``fitness(sigmas, draw) -> float``, lower is better; ``draw`` selects the noise set.
        config: hyper-parameters.
        seed: seeds the search's own generator.
        label: names the fitness; a saved state is only resumed with the same label.
        initial: sigma lists (descending, ``nfe`` positive sigmas then 0, e.g. the best pairs of a menu) that join
            uniform and Karras in generation 0, each on its nearest grid points (collisions pushed apart); a state
            is only resumed with the same ones.
    """

    def __init__(self, space: GeneSpace, nfe: int, fitness: Callable[[torch.Tensor, int], float],
                 config: EvolutionConfig | None = None, seed: int = 0, label: str = "fitness", initial=()):
        self.space = space
        self.nfe = space.check_nfe(nfe)
        self.config = (config or EvolutionConfig()).check()
        self.initial = [self._genes_of(s, i) for i, s in enumerate(initial)]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ScheduleError(f"seed={seed!r} must be a whole number >= 0.")
        self.seed = int(seed)
        self.fitness = fitness
        self.label = str(label)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        self.generation = 0
        self.population: list[tuple[int, ...]] = self._initial_population()
        self.archive: list[tuple[int, ...]] = []
        self.cache: dict[tuple[tuple[int, ...], int], float | None] = {}
        self.history: list[dict] = []
        self.evaluations = 0
        self.done = False

    # -- the algorithm --

    def _genes_of(self, sigmas, i: int) -> tuple[int, ...]:
        s = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
        if len(s) != self.nfe + 1 or float(s[-1]) != 0.0 or not bool((s[:-1] > 0).all()) \
                or not bool((s[:-1] > s[1:]).all()):
            raise ScheduleError(f"initial[{i}] has {len(s) - 1} steps or is not a descending list ending in 0; "
                                f"pass lists of {self.nfe} positive sigmas followed by 0.")
        return nearest_genes(self.space, s[:-1])

    def _initial_population(self) -> list[tuple[int, ...]]:
        space, n, cfg = self.space, self.nfe, self.config
        seeds = [uniform_genes(space, n), karras_genes(space, n), *self.initial]
        pop: list[tuple[int, ...]] = []
        for g in seeds:
            if g not in pop and len(pop) < cfg.population:
                pop.append(g)
        half = max(cfg.population // 2, len(pop))
        tries = 0
        while len(pop) < half and tries < _TRIES * cfg.population:
            child = mutate(seeds[tries % len(seeds)], space, self.rng, cfg.m_prob)
            tries += 1
            if child not in pop:
                pop.append(child)
        while len(pop) < cfg.population:
            child = random_genes(space, n, self.rng)
            if child not in pop:
                pop.append(child)
        return pop

    def draw(self, generation: int) -> int:
        return generation if self.config.resample_noise else 0

    def _evaluate(self, genes, draw, progress) -> float:
        key = (genes, draw)
        if key not in self.cache:
            value = float(self.fitness(self.space.sigmas(genes), draw))
            self.cache[key] = value if math.isfinite(value) else None
            self.evaluations += 1
            if progress is not None:
                best = min((_score(self.cache.get((g, draw))) for g in self._pool()), default=math.inf)
                progress({"generation": self.generation, "generations": self.config.generations,
                          "evaluations": self.evaluations, "genes": genes, "fitness": _score(value),
                          "best_fitness": best})
        return _score(self.cache[key])

    def _pool(self) -> list[tuple[int, ...]]:
        pool = list(self.archive)
        pool += [g for g in self.population if g not in pool]
        return pool

    def _breed(self) -> list[tuple[int, ...]]:
        cfg, rng = self.config, self.rng
        seen = {g for g, _ in self.cache}
        new: list[tuple[int, ...]] = []

        def fresh(make):
            for _ in range(_TRIES):
                child = make()
                if child is not None and child not in seen and child not in new:
                    new.append(child)
                    return

        for _ in range(cfg.mutations):
            fresh(lambda: mutate(self.archive[int(rng.integers(len(self.archive)))], self.space, rng, cfg.m_prob))
        for _ in range(cfg.crossovers):
            fresh(lambda: crossover(self.archive[int(rng.integers(len(self.archive)))],
                                    self.archive[int(rng.integers(len(self.archive)))], rng))
        while len(new) < cfg.population:
            before = len(new)
            fresh(lambda: random_genes(self.space, self.nfe, rng))
            if len(new) == before:  # the grid is nearly exhausted; accept what we have
                break
        return new

    def run(self, progress: Callable[[dict], None] | None = None, autosave=None) -> SearchResult:
        """Run (or continue) to the last generation.

        ``progress(info)`` is called after every fitness evaluation with the generation, the evaluation count,
        the candidate's and the generation's best fitness; it may raise (e.g. on Cancel) to stop the search.
        ``autosave`` (a path) receives the state after every generation and when the search is interrupted.
        """
        try:
            while not self.done:
                self._generation(progress)
                if autosave is not None:
                    save_state(autosave, self.state_doc())
        except BaseException:
            if autosave is not None:
                save_state(autosave, self.state_doc())
            raise
        return self.result()

    def _generation(self, progress) -> None:
        draw = self.draw(self.generation)
        pool = self._pool()
        for genes in pool:
            self._evaluate(genes, draw, progress)
        ranked = sorted(pool, key=lambda g: (_score(self.cache[(g, draw)]), g))
        self.archive = ranked[: self.config.top_k]
        scores = [_score(self.cache[(g, draw)]) for g in self.population]
        finite = [s for s in scores if math.isfinite(s)]
        self.history.append({
            "generation": self.generation, "draw": draw,
            "best_fitness": self.cache[(self.archive[0], draw)],  # None when no candidate gave a finite value
            "best_genes": list(self.archive[0]),
            "mean_fitness": float(np.mean(finite)) if finite else None,
            "evaluations": self.evaluations,
        })
        if self.generation == self.config.generations - 1:
            self.done = True
            return
        self.population = self._breed()
        self.generation += 1

    def result(self) -> SearchResult:
        if not self.archive:
            raise ScheduleError("the search has not evaluated a generation yet; call run() first.")
        last = self.history[-1]
        best = self.archive[0]
        return SearchResult(best, self.space.sigmas(best), _score(last["best_fitness"]), list(self.history),
                            self.evaluations)

    # -- state --

    def _identity(self) -> dict:
        out = {"space": self.space.describe(), "nfe": self.nfe, "seed": self.seed,
               "config": asdict(self.config), "fitness": self.label}
        if self.initial:  # absent otherwise, so states saved before seeds existed still resume
            out["initial"] = [list(g) for g in self.initial]
        return out

    def state_doc(self) -> dict:
        """The complete search state as a hashed JSON document (see ``state``)."""
        cache = [[list(g), d, v] for (g, d), v in self.cache.items()]
        return make_state_doc({
            **self._identity(),
            "generation": self.generation, "done": self.done,
            "population": [list(g) for g in self.population], "archive": [list(g) for g in self.archive],
            "cache": cache, "rng": self.rng.bit_generator.state, "history": self.history,
            "evaluations": self.evaluations,
        })

    def restore(self, doc: dict, source: str = "search state") -> EvolutionSearch:
        """Continue from a saved ``state_doc()``: build the search with the same settings, then restore.

        Refuses (ScheduleError naming what differs) a state made for another model, grid, budget, seed,
        configuration or fitness label, as well as a damaged or edited one.
        """
        doc = check_state(doc, source)
        mine = self._identity()
        for key in ("space", "nfe", "seed", "config", "fitness", "initial"):
            if doc.get(key) != mine.get(key):
                raise ScheduleError(f"{source} was saved by a different search ({key}: saved {doc.get(key)!r}, "
                                    f"now {mine.get(key)!r}); use the same settings to resume, or start a new search.")
        space = self.space
        last = self.config.generations - 1
        if not 0 <= doc["generation"] <= last or (doc["done"] and doc["generation"] != last):
            raise ScheduleError(f"{source} is at generation {doc['generation']} (done: {doc['done']}), outside the "
                                f"{self.config.generations} generations of this search; delete it and start the "
                                "search again.")
        if doc["done"] and (not doc["archive"] or not doc["history"]):
            raise ScheduleError(f"{source} says the search is done but holds no result; delete it and start the "
                                "search again.")
        try:
            self.generation = int(doc["generation"])
            self.done = bool(doc["done"])
            self.population = [_genes(g, space) for g in doc["population"]]
            self.archive = [_genes(g, space) for g in doc["archive"]]
            self.cache = {(_genes(g, space), int(d)): (None if v is None else float(v)) for g, d, v in doc["cache"]}
            self.rng.bit_generator.state = doc["rng"]
            self.history = list(doc["history"])
            self.evaluations = int(doc["evaluations"])
        except (TypeError, ValueError, KeyError) as e:
            raise ScheduleError(f"{source} holds a malformed {STATE_FORMAT} ({e}); delete it and start the "
                                "search again.") from None
        return self


def _genes(values, space: GeneSpace) -> tuple[int, ...]:
    genes = tuple(int(v) for v in values)
    if not space.valid(genes) or any(int(v) != v for v in values):
        raise ValueError(f"invalid genes {values!r}")
    return genes


def evolve(space: GeneSpace, nfe: int, fitness, config: EvolutionConfig | None = None, seed: int = 0,
           progress=None, label: str = "fitness") -> SearchResult:
    """Run a whole search in one call (see ``EvolutionSearch``)."""
    return EvolutionSearch(space, nfe, fitness, config, seed, label).run(progress)
