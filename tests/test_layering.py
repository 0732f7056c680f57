"""
The layering docs/architecture.md describes, checked on the source: no import
cycle anywhere in mailstack/, storage/ depends on nothing else of mailstack, and
every storage module can be imported on its own.
"""

import ast
import os
import subprocess
import sys

from twisted.trial import unittest

import mailstack

ROOT = os.path.dirname(os.path.abspath(mailstack.__file__))


def moduleFiles(root=ROOT, package="mailstack"):
    """
    @return: C{{dotted module name: path}} for every module under C{root}.
    """
    modules = {}
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        relative = os.path.relpath(directory, root)
        prefix = package if relative == "." else package + "." + relative.replace(os.sep, ".")
        for name in sorted(files):
            if name.endswith(".py"):
                module = prefix if name == "__init__.py" else prefix + "." + name[:-3]
                modules[module] = os.path.join(directory, name)
    return modules


def importGraph(modules):
    """
    @param modules: C{{name: path}} from L{moduleFiles}.
    @return: C{{name: set of names of C{modules} it imports}}, counting imports
        inside functions too (a lazy import is still a dependency).
    """
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        isPackage = path.endswith("__init__.py")
        dependencies = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                dependencies.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")
                    parts = parts[:len(parts) - node.level + (1 if isPackage else 0)]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    if base + "." + alias.name in modules:
                        dependencies.add(base + "." + alias.name)
                    elif base in modules:
                        dependencies.add(base)
        dependencies.discard(module)
        graph[module] = dependencies
    return graph


def cycles(graph):
    """
    @return: the strongly connected components of C{graph} with more than one
        module (each an import cycle), sorted.
    """
    index, low, stack, onStack, found = {}, {}, [], set(), []

    def visit(start):
        # Iterative Tarjan: (node, iterator over its dependencies).
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        onStack.add(start)
        while work:
            node, dependencies = work[-1]
            for dependency in dependencies:
                if dependency not in index:
                    index[dependency] = low[dependency] = len(index)
                    stack.append(dependency)
                    onStack.add(dependency)
                    work.append((dependency, iter(sorted(graph[dependency]))))
                    break
                if dependency in onStack:
                    low[node] = min(low[node], index[dependency])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        onStack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


class CycleFinderTests(unittest.TestCase):
    """
    L{cycles} finds import cycles, so the checks below mean something.
    """

    def test_findsCycles(self):
        """A two-module cycle and a three-module cycle are both reported; a chain is not."""
        graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
        self.assertEqual(cycles(graph), [["a", "b"], ["c", "d", "e"]])
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": set()}), [])

    def test_lazyImportCounts(self):
        """An import inside a function is a dependency like a top-level one."""
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "storage"))
        files = {
            "__init__.py": "",
            "storage/__init__.py": "",
            "storage/a.py": "from pkg.storage.b import B\nA = 1\n",
            "storage/b.py": "def f():\n    from pkg.storage import a\nB = 2\n",
        }
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        graph = importGraph(moduleFiles(directory, "pkg"))
        self.assertEqual(cycles(graph), [["pkg.storage.a", "pkg.storage.b"]])


class PrivateAccessFinderTests(unittest.TestCase):
    """
    L{privateAccesses} tells a module's own private names from another's.
    """

    def test_finds(self):
        """obj._x is reported unless this module defines _x; self._x never is; nor imports from outside."""
        directory = self.mktemp()
        os.makedirs(directory)
        files = {
            "__init__.py": "",
            "a.py": ("class A:\n    def _own(self):\n        self._x = 1\n"
                     "def f(a, b):\n    a._own()\n    b._other()\n    return a._x\n"),
            "b.py": "from pkg.a import A, _hidden\nfrom os import _exit\n",
        }
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        self.assertEqual(privateAccesses(moduleFiles(directory, "pkg")),
                         ["pkg.a:6: b._other", "pkg.b:1: from pkg.a import _hidden"])


# The layers of docs/architecture.md, bottom first: a module may import its
# own layer and those below, never one above.
LAYERS = (
    ("storage", ("mailstack.storage",)),
    ("auth", ("mailstack.auth",)),
    ("kit", ("mailstack.capture", "mailstack.protocol", "mailstack.listener", "mailstack.config",
             "mailstack.settings", "mailstack.throttle", "mailstack.sessions",
             "mailstack.tls", "mailstack.instruments", "mailstack.metrics",
             "mailstack.activity", "mailstack.workers", "mailstack.workerlink")),
    ("engines", ("mailstack.smtp", "mailstack.pop3", "mailstack.imap", "mailstack.relay",
                 "mailstack.transcript", "mailstack.transcripthub")),
    ("plug-ins", ("mailstack.smtp.plugin", "mailstack.pop3.plugin", "mailstack.imap.plugin")),
    ("web", ("mailstack.web",)),
    ("service", ("mailstack.service", "mailstack.cli")),
    ("fixture", ("mailstack.testing",)),
)
# Packages of the engines layer that must not import one another.
ENGINE_PACKAGES = ("mailstack.smtp", "mailstack.pop3", "mailstack.imap", "mailstack.relay")


def _within(module, prefix):
    return module == prefix or module.startswith(prefix + ".")


def layerOf(module):
    """The index in L{LAYERS} of C{module} (the most specific prefix wins)."""
    best, length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _within(module, prefix) and len(prefix) > length:
                best, length = index, len(prefix)
    return best


class LayeringTests(unittest.TestCase):
    """
    mailstack/ as docs/architecture.md layers it.
    """

    def test_everyModuleHasALayer(self):
        """Each module of mailstack/ (but the package itself) is in one layer."""
        self.assertEqual([m for m in self.modules if m != "mailstack" and layerOf(m) is None], [])

    def test_importsPointDown(self):
        """No module imports one of a higher layer (the engines never import a plug-in or the service)."""
        upward = sorted(
            "%s (%s) -> %s (%s)" % (module, LAYERS[layerOf(module)][0],
                                    dependency, LAYERS[layerOf(dependency)][0])
            for module, dependencies in self.graph.items() if module != "mailstack"
            for dependency in dependencies
            if dependency != "mailstack" and layerOf(dependency) > layerOf(module))
        self.assertEqual(upward, [])

    def test_enginesIndependent(self):
        """smtp/, pop3/, imap/ and relay/ import nothing from one another (plug-ins aside)."""
        crossing = sorted(
            "%s -> %s" % (module, dependency)
            for module, dependencies in self.graph.items()
            if layerOf(module) == 3
            for dependency in dependencies
            for package in ENGINE_PACKAGES
            if _within(dependency, package) and not _within(module, package))
        self.assertEqual(crossing, [])

    def setUp(self):
        self.modules = moduleFiles()
        self.graph = importGraph(self.modules)

    def test_noImportCycles(self):
        """No module of mailstack/ imports, directly or through others, one that imports it."""
        self.assertEqual(cycles(self.graph), [])

    def test_storageImportsOnlyStorage(self):
        """storage/ imports nothing of mailstack outside storage/ (the bottom layer)."""
        outside = sorted(
            (module, dependency) for module, dependencies in self.graph.items()
            if module.startswith("mailstack.storage")
            for dependency in dependencies
            if not dependency.startswith("mailstack.storage") and dependency != "mailstack")
        self.assertEqual(outside, [])

    # (module, access) pairs allowed for now, line numbers left out so edits
    # elsewhere do not break it; a stale entry fails. None left.
    KNOWN_PRIVATE_ACCESSES: list = []

    def privateAccesses(self):
        """L{privateAccesses} of mailstack/ as C{(module, access, "module:line: access")}."""
        for entry in privateAccesses(self.modules):
            where, _, access = entry.partition(": ")
            yield where.rpartition(":")[0], access, entry

    def test_noPrivateAccessAcrossModules(self):
        """No module reads, calls or imports another module's private (underscore) names."""
        found = [entry for module, access, entry in self.privateAccesses()
                 if (module, access) not in self.KNOWN_PRIVATE_ACCESSES]
        self.assertEqual(found, [])

    def test_knownPrivateAccessesStillThere(self):
        """Every allowed exception is still in the code (the list only shrinks)."""
        found = {(module, access) for module, access, _ in self.privateAccesses()}
        self.assertEqual([known for known in self.KNOWN_PRIVATE_ACCESSES if known not in found], [])

    def test_storageModulesImportAlone(self):
        """Each storage module imports on its own in a fresh interpreter (no order it relies on)."""
        names = sorted(m for m in self.modules if m.startswith("mailstack.storage."))
        self.assertIn("mailstack.storage.account", names)
        checkout = os.path.dirname(ROOT)
        processes = {
            name: subprocess.Popen(
                [sys.executable, "-c", "import %s" % (name,)], cwd=checkout,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for name in names}
        failures = {}
        for name, process in processes.items():
            output = process.communicate()[0]
            if process.returncode:
                failures[name] = output.decode("utf-8", "replace").strip().splitlines()[-1:]
        self.assertEqual(failures, {})


def privateAccesses(modules):
    """
    Find code reaching into another module's private names: C{obj._name} where
    C{obj} is not C{self} or C{cls} and no code of the same module defines
    C{_name} (as a function, a class attribute or an attribute it assigns), and
    C{from package.module import _name} of a module of C{modules}.

    @param modules: C{{name: path}} from L{moduleFiles}.
    @return: sorted C{"module:line: obj._name"} strings.
    """
    found = []
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        defined = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                found.extend("%s:%d: from %s import %s" % (module, node.lineno, node.module, a.name)
                             for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__"))
                continue
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr in defined:
                continue
            found.append("%s:%d: %s.%s" % (module, node.lineno,
                                           ast.unparse(node.value), node.attr))
    return sorted(found)


class RepositoryReferencesTests(unittest.TestCase):
    """
    Code, tests and docs point at nothing outside the repository.
    """

    checkout = os.path.dirname(ROOT)

    def files(self, *patterns):
        import glob
        for pattern in patterns:
            yield from sorted(glob.glob(os.path.join(self.checkout, pattern), recursive=True))

    def test_noOutsideDocuments(self):
        """No source, test or doc cites the design notes kept outside the checkout."""
        found = []
        for path in self.files("mailstack/**/*.py", "tests/**/*.py", "docs/*.md", "*.md",
                               "bench/**/*.py", "bench/*.md", "etc/*.toml", "Makefile"):
            if path == os.path.abspath(__file__.replace(".pyc", ".py")):
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if any(name in line for name in ("../shared", "TWISTED-NOTES", "DESIGN.md")):
                        found.append("%s:%d" % (os.path.relpath(path, self.checkout), number))
        self.assertEqual(found, [])

    def test_markdownLinksResolve(self):
        """Every relative link in README.md and docs/*.md names a file in the checkout."""
        import re
        broken = []
        for path in self.files("*.md", "docs/*.md", "bench/*.md"):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue
                resolved = os.path.normpath(os.path.join(os.path.dirname(path),
                                                         target.split("#")[0]))
                inside = resolved.startswith(self.checkout + os.sep)
                if not inside or not os.path.exists(resolved):
                    broken.append("%s: %s" % (os.path.relpath(path, self.checkout), target))
        self.assertEqual(broken, [])

    def test_twistedNotesMatchStockTests(self):
        """docs/twisted-notes.md names exactly the stock-Twisted tests of test_stock_twisted.py."""
        import re

        from tests import test_stock_twisted
        with open(os.path.join(self.checkout, "docs", "twisted-notes.md"), encoding="utf-8") as f:
            named = set(re.findall(r"`(test_[A-Za-z0-9_]+)`", f.read()))
        stock = {name for value in vars(test_stock_twisted).values()
                 if isinstance(value, type) and issubclass(value, test_stock_twisted.StockDefect)
                 for name in dir(value) if name.startswith("test_")}
        self.assertTrue(stock)
        self.assertEqual((sorted(named - stock), sorted(stock - named)), ([], []))
