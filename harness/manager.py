"""The plugin manager: entry points (built-in and third-party alike) through one loader.

Built-in plugins are entry points of the ``optbench`` distribution itself in the group
``optbench``, so they take exactly the path a third-party package takes and can be
disabled by name. A plugin that fails to import, uses an unknown hook or raises in a hook
costs one line naming it, its distribution and the error; ``strict`` makes that fatal.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

import pluggy

from . import hookspecs
from .api import REGISTRY_TYPES, Backend, Dataset, Metric, ModelSource, PluginObject, Reporter, Technique

GROUP = "optbench"
T = TypeVar("T", bound=PluginObject)


class PluginError(Exception):
    """A plugin problem, already phrased as one line naming the plugin."""


@dataclass
class PluginInfo:
    name: str
    dist: str
    version: str
    module: str
    path: str
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dist": self.dist, "version": self.version, "module": self.module,
                "path": self.path, "hooks": self.hooks, "provides": self.provides}


def did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Named plugin objects of one kind, each remembering the plugin that registered it."""

    def __init__(self, kind: str):
        self.kind = kind
        self.items: dict[str, T] = {}
        self.owner: dict[str, str] = {}

    def add(self, obj: T, plugin: str) -> None:
        base = REGISTRY_TYPES[self.kind]
        if isinstance(obj, type) and issubclass(obj, base):
            raise PluginError(f"registered the class {obj.__name__!r} instead of an instance; call register({obj.__name__}())")
        if not isinstance(obj, base):
            raise PluginError(f"registered {type(obj).__name__!r} as one of its {self.kind}, which must be a {base.__name__} instance")
        if not getattr(obj, "name", "") or not isinstance(obj.name, str):
            raise PluginError(f"registered a {base.__name__} without a name")
        if obj.name in self.items:
            raise PluginError(f"registered {self.kind[:-1]} {obj.name!r}, already registered by plugin {self.owner[obj.name]!r}")
        self.items[obj.name] = obj
        self.owner[obj.name] = plugin

    def get(self, name: str) -> T:
        if name not in self.items:
            raise KeyError(f"unknown {self.kind[:-1]} {name!r}{did_you_mean(name, self.items)}; available: {', '.join(sorted(self.items)) or 'none'}")
        return self.items[name]

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def __iter__(self):
        return iter(self.items.values())

    def names(self) -> list[str]:
        return sorted(self.items)


IN_PROCESS = "(in-process)"


def _where(name: str, dist: str, version: str) -> str:
    """How a plugin is named in every message: plugin 'x' (dist y 1.2)."""
    return f"plugin {name!r} (in-process)" if dist == IN_PROCESS else f"plugin {name!r} (dist {dist} {version})"


def _warn(line: str) -> None:
    print(f"optbench: {line}", file=sys.stderr)


class PluginManager:
    """Typed wrapper over pluggy: the runner calls methods, never ``pm.hook.<string>``."""

    def __init__(self, *, strict: bool = False, disabled: Iterable[str] = (), warn: Callable[[str], None] = _warn):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.disabled = set(disabled)
        self.warn = warn
        self.errors: list[str] = []
        self.info: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] = {}
        self.trace = os.environ.get("OPTBENCH_TRACE", "") not in ("", "0")
        if self.trace:
            self.pm.add_hookcall_monitoring(self._trace_before, self._trace_after)

    # --- loading -------------------------------------------------------------------

    def _fail(self, line: str) -> None:
        self.errors.append(line)
        if self.strict:
            raise PluginError(line)
        self.warn(line)

    def load_entrypoints(self) -> PluginManager:
        eps = sorted(metadata.entry_points(group=GROUP), key=lambda ep: (ep.dist.name != "optbench" if ep.dist else True, ep.name))
        for ep in eps:
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if ep.name in self.disabled:
                continue
            if ep.name in self.info:
                taken = self.info[ep.name]
                if taken.dist != dist:  # the same distribution seen twice on the path is not a clash
                    self._fail(f"{_where(ep.name, dist, version)}: the plugin name {ep.name!r} is taken by "
                               f"{_where(ep.name, taken.dist, taken.version)}; it is not loaded (rename its entry point)")
                continue
            try:
                obj = ep.load()
            except BaseException as e:  # noqa: BLE001 - a broken plugin must not take the run down
                if isinstance(e, KeyboardInterrupt):
                    raise
                self._fail(f"{_where(ep.name, dist, version)}: {type(e).__name__}: {e}".rstrip(": "))
                continue
            self.register(obj, ep.name, dist=dist, version=version)
        return self

    def register(self, obj: Any, name: str, *, dist: str = IN_PROCESS, version: str = "") -> bool:
        """Register a plugin module or object; validates its hooks at once."""
        if name in self.disabled:
            return False
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as e:
            self._fail(f"{_where(name, dist, version)}: {self._validation_line(e)}")
            return False
        except ValueError as e:
            self._fail(f"{_where(name, dist, version)}: {e}")
            return False
        known = [n for n in dir(hookspecs) if n.startswith("optbench_")]
        for attr in dir(obj):
            opts = self.pm.parse_hookimpl_opts(obj, attr)
            marked = opts is not None
            if not (marked or attr.startswith("optbench_")):
                continue
            h = (opts or {}).get("specname") or attr
            if h not in known:
                self._fail(f"{_where(name, dist, version)}: unknown hook {h!r}{did_you_mean(h, known)}; it is ignored")
            elif not marked and callable(getattr(obj, attr, None)):
                self._fail(f"{_where(name, dist, version)}: {h!r} is not decorated with @hookimpl; it is ignored")
        module = getattr(obj, "__name__", type(obj).__module__)
        path = getattr(sys.modules.get(module), "__file__", "") or ""
        self.info[name] = PluginInfo(name, dist, version, module, path, hooks=self._hooknames_of(name))
        self._registries.clear()
        return True

    def _validation_line(self, e: pluggy.PluginValidationError) -> str:
        """pluggy's several-line message as one line, with the arguments the hook really has."""
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        hook = re.search(r"for hook '(\w+)'", lines[0]) if lines else None
        spec = getattr(getattr(self.pm.hook, hook.group(1), None), "spec", None) if hook else None
        line = "; ".join(lines[1:]) or str(e)
        return line + (f" (the hook's arguments: {', '.join(spec.argnames)})" if spec else "")

    def _hooknames_of(self, plugin_name: str) -> list[str]:
        out = []
        for hookname in sorted(n for n in dir(self.pm.hook) if n.startswith("optbench_")):
            caller = getattr(self.pm.hook, hookname)
            if any(i.plugin_name == plugin_name for i in caller.get_hookimpls()):
                out.append(hookname)
        return out

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.info.pop(name, None)
        self._registries.clear()

    # --- registries ----------------------------------------------------------------

    def _collect(self, kind: str) -> Registry:
        if kind in self._registries:
            return self._registries[kind]
        reg: Registry = Registry(kind)
        caller = getattr(self.pm.hook, f"optbench_register_{kind}")
        # one plugin at a time, so each registration is attributed and a raising plugin
        # costs only its own contributions
        for impl in caller.get_hookimpls():  # registration order: built-ins first
            plugin = impl.plugin_name
            where = self._plugin_where(plugin)

            def register(obj: Any, _plugin: str = plugin, _where: str = where) -> None:
                try:
                    reg.add(obj, _plugin)
                except PluginError as e:
                    self._fail(f"{_where}: {e}")
                else:
                    if _plugin in self.info:
                        self.info[_plugin].provides.setdefault(kind, []).append(obj.name)

            if self.trace:
                self._trace_line(f"call {caller.name} -> {plugin}")
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as e:  # noqa: BLE001
                self._fail(f"{where}: {caller.name} raised {type(e).__name__}: {e}")
        self._registries[kind] = reg
        return reg

    def techniques(self) -> Registry[Technique]:
        return self._collect("techniques")

    def backends(self) -> Registry[Backend]:
        return self._collect("backends")

    def models(self) -> Registry[ModelSource]:
        return self._collect("models")

    def datasets(self) -> Registry[Dataset]:
        return self._collect("datasets")

    def metrics(self) -> Registry[Metric]:
        return self._collect("metrics")

    def reporters(self) -> Registry[Reporter]:
        return self._collect("reporters")

    def collect_all(self) -> None:
        for kind in REGISTRY_TYPES:
            self._collect(kind)

    def check(self) -> list[str]:
        """Every problem of the loaded plugins, one line each; runs no cell, model or technique.

        Loading and registration problems first, then each registered object checked
        against its protocol in :mod:`optbench.api` (see :func:`check_object`).
        """
        self.collect_all()
        problems = list(self.errors)
        for kind in REGISTRY_TYPES:
            for obj in self._collect(kind):
                problems += [f"{self.owner_where(kind, obj.name)}: {kind[:-1]} {obj.name!r}: {p}" for p in check_object(kind, obj)]
        return problems

    # --- lifecycle (observers: a raising one costs a line, not the run) ------------------

    def _notify(self, hookname: str, **kwargs: Any) -> None:
        caller = getattr(self.pm.hook, hookname)
        for impl in caller.get_hookimpls():  # registration order: built-ins first
            if self.trace:
                self._trace_line(f"call {hookname} -> {impl.plugin_name}")
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as e:  # noqa: BLE001
                self._fail(f"{self._plugin_where(impl.plugin_name)}: {hookname} raised {type(e).__name__}: {e}")

    def cell_started(self, cell: dict[str, Any]) -> None:
        self._notify("optbench_cell_started", cell=cell)

    def cell_finished(self, cell: dict[str, Any], row: dict[str, Any]) -> None:
        self._notify("optbench_cell_finished", cell=cell, row=row)

    def run_finished(self, run_dir: str, rows: list[dict[str, Any]]) -> None:
        self._notify("optbench_run_finished", run_dir=run_dir, rows=rows)

    # --- facts -----------------------------------------------------------------------

    def versions(self) -> dict[str, str]:
        """Plugin name -> ``dist==version``, recorded in every result row."""
        return {n: f"{i.dist}=={i.version}" for n, i in sorted(self.info.items())}

    def _plugin_where(self, plugin: str) -> str:
        """A registered plugin as every message names it: plugin 'x' (dist y 1.2)."""
        info = self.info.get(plugin)
        return _where(plugin, info.dist, info.version) if info else f"plugin {plugin!r}"

    def owner_where(self, kind: str, name: str) -> str:
        """The plugin behind a registered object, named as in every message."""
        return self._plugin_where(self._collect(kind).owner.get(name, ""))

    def owner_version(self, kind: str, name: str) -> str:
        reg = self._collect(kind)
        plugin = reg.owner.get(name, "")
        info = self.info.get(plugin)
        return f"{plugin} ({info.dist}=={info.version})" if info else plugin

    # --- tracing -----------------------------------------------------------------------

    def _trace_line(self, s: str) -> None:
        print(f"[optbench trace] {s}", file=sys.stderr)

    def _trace_before(self, hook_name: str, hook_impls: list, kwargs: dict) -> None:
        self._trace_line(f"call {hook_name} -> {', '.join(i.plugin_name for i in hook_impls)}")

    def _trace_after(self, outcome: Any, hook_name: str, hook_impls: list, kwargs: dict) -> None:
        self._trace_line(f"done {hook_name}")


PARAM_TYPES = (bool, int, float, str, list, type(None))
#: the method each kind of object must implement
REQUIRED_METHOD = {"techniques": "apply", "models": "load", "datasets": "load", "metrics": "measure", "reporters": "render"}


def check_object(kind: str, obj: PluginObject) -> list[str]:
    """Problems of one registered object against its protocol; reads attributes, calls only ``validate``."""
    problems: list[str] = []
    if not isinstance(obj.description, str):
        problems.append(f"description must be a string, got {type(obj.description).__name__}")
    params, choices = obj.params, obj.choices
    if not isinstance(params, dict):
        problems.append(f"params must be a dict of defaults, got {type(params).__name__}")
        params = {}
    for k, v in params.items():
        if not isinstance(v, PARAM_TYPES):
            problems.append(f"param {k!r} has a default of type {type(v).__name__}; use bool, int, float, str, list or None")
    if not isinstance(choices, dict):
        problems.append(f"choices must be a dict of param -> allowed values, got {type(choices).__name__}")
        choices = {}
    for k, allowed in choices.items():
        if k not in params:
            problems.append(f"choices names {k!r}, which is not one of its params{did_you_mean(str(k), params)}")
        elif not isinstance(allowed, (list, tuple)) or not allowed:
            problems.append(f"choices for {k!r} must be a non-empty list, got {allowed!r}")
        elif params[k] is not None and params[k] not in allowed:
            problems.append(f"default {k}={params[k]!r} is not one of its choices ({', '.join(map(str, allowed))})")
    method = REQUIRED_METHOD.get(kind)
    base = REGISTRY_TYPES[kind]
    if method and getattr(type(obj), method, None) is getattr(base, method):
        problems.append(f"does not implement {method}()")
    if kind == "techniques":
        from .api import TECHNIQUE_KINDS

        if obj.kind not in TECHNIQUE_KINDS:
            problems.append(f"kind {obj.kind!r} is not one of {', '.join(TECHNIQUE_KINDS)}{did_you_mean(str(obj.kind), TECHNIQUE_KINDS)}")
        if not isinstance(obj.preload, (tuple, list)) or not all(isinstance(m, str) for m in obj.preload):
            problems.append(f"preload must be a tuple of module names, got {obj.preload!r}")
    elif kind == "backends":
        if not isinstance(obj.device, str) or not obj.device:
            problems.append(f"device must be a non-empty string such as 'cpu' or 'cuda', got {obj.device!r}")
    elif kind == "reporters":
        if not isinstance(obj.filename, str) or not obj.filename:
            problems.append("has no filename (the file it writes into the results directory)")
    if not problems and params:
        try:
            rejected = obj.validate(dict(params))
        except Exception as e:  # noqa: BLE001
            problems.append(f"validate() raised {type(e).__name__}: {e} on its own defaults")
        else:
            problems += [f"its own defaults fail validate(): {p}" for p in rejected or []]
    return problems


def load(*, strict: bool = False, disabled: Iterable[str] = (), warn: Callable[[str], None] = _warn) -> PluginManager:
    """A plugin manager with every installed ``optbench`` entry point loaded."""
    return PluginManager(strict=strict, disabled=disabled, warn=warn).load_entrypoints()


__all__ = ["PluginManager", "PluginError", "Registry", "load", "did_you_mean", "check_object",
           "Technique", "Backend", "ModelSource", "Dataset", "Metric", "Reporter"]
