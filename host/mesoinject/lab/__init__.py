"""labgrid support: a lab of injector rigs (`pip install 'mesoinject[lab]'`).

Importing this package registers with labgrid's target factory: `InjectorDriver` (the board's serial
port), `MTSICSBalanceDriver` (the balance under its needle) and `InjectorStrategy` (ready = the board
answers HELLO as the board named). An environment file names them (see lab/env.yaml in the repository):

    imports: [mesoinject.lab]
    targets: {main: {resources: {RemotePlace: {name: !template "$LG_PLACE"}},
                     drivers: {InjectorDriver: {bindings: {port: board}},
                               MTSICSBalanceDriver: {bindings: {port: balance}}, InjectorStrategy: {}}}}

`pytest -p labgrid.pytestplugin --lg-env env.yaml hil_tests` then runs the suites on the place's board
through the mesoinject pytest plugin (sim_only tests skip, as on any board on a port).
"""

from .drivers import InjectorDriver, InjectorStrategy, MTSICSBalanceDriver, serial_url

__all__ = ["InjectorDriver", "InjectorStrategy", "MTSICSBalanceDriver", "serial_url"]
