"""Tutorial: Manager > 创建和使用自定义的Manager对象与Proxy对象 (custom manager and proxies).

A BaseManager subclass serving a class (all public methods, or an explicit
``exposed`` list), a generator through a custom proxy, and a module. From
forklift.managers: BaseManager and BaseProxy, the stdlib API; the manager's
server process gets a random authkey, as in the stdlib.
"""

# Fixes to the tutorial's code:
# - GeneratorProxy declared ``__exposed = [...]``: a double underscore name is
#   mangled to _GeneratorProxy__exposed, so nothing was declared. It is
#   ``_exposed_``, the name BaseProxy reads;
# - op._exposes_ -> op._exposed_ (an AttributeError);
# - register(..., expose=(...)) -> exposed=(...): ``expose`` is no parameter of
#   register() (a TypeError);
# - register('Fool', ...) -> 'Foo1' (a typo for the first Foo registration);
# - "you called Foo.q" -> "Foo.g()"; "caled" -> "called";
# - Foo's methods printed in the manager's server process, whose output arrives
#   whenever that process flushes (often after the main process's lines): they
#   return their text and the main process prints it;
# - op._exposed_ lists every public function of the operator module: only its
#   size and two members are printed;
# - freeze_support() is only needed for frozen Windows executables: dropped.

import operator

from forklift.managers import BaseManager, BaseProxy


class Foo:
    def f(self) -> str:
        return "you called Foo.f()"

    def g(self) -> str:
        return "you called Foo.g()"

    def _h(self) -> str:
        return "you called Foo._h()"


def baz():
    for i in range(10):
        yield i * i


class GeneratorProxy(BaseProxy):
    """Proxy for a generator living in the manager: forwards __next__."""

    _exposed_ = ("__next__",)

    def __iter__(self):
        return self

    def __next__(self):
        return self._callmethod("__next__")


def get_operator_module():
    return operator


class MyManager(BaseManager):
    pass


MyManager.register("Foo1", Foo)  # public methods f() and g() are exposed
MyManager.register("Foo2", Foo, exposed=("g", "_h"))  # exactly g() and _h()
MyManager.register("baz", baz, proxytype=GeneratorProxy)
MyManager.register("operator", get_operator_module)


def main() -> None:
    with MyManager() as manager:
        print("-" * 20)
        f1 = manager.Foo1()
        print(f1.f())
        print(f1.g())
        print(f"f1 has _h: {hasattr(f1, '_h')}; exposed: {sorted(f1._exposed_)}")
        print("-" * 20)
        f2 = manager.Foo2()
        print(f2.g())
        print(f2._h())
        print(f"f2 has f: {hasattr(f2, 'f')}; exposed: {sorted(f2._exposed_)}")
        print("-" * 20)
        print(" ".join(f"<{i}>" for i in manager.baz()))
        print("-" * 20)
        op = manager.operator()
        print("op.add(23, 45) =", op.add(23, 45))
        print("op.pow(2, 94) =", op.pow(2, 94))
        exposed = op._exposed_
        both = "add" in exposed and "pow" in exposed
        print(f"op._exposed_ has {len(exposed)} names, add and pow among them: {both}")


if __name__ == "__main__":
    main()
