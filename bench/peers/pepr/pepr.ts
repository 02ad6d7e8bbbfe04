import { PeprModule } from "pepr";
import { WebAppOperator } from "./capabilities/webapp";
// cfg loads the Pepr configuration (uuid, onError, ...) from package.json
import cfg from "./package.json";

/** The module: one capability, the WebApp operator. `pepr dev` builds and runs this file. */
new PeprModule(cfg, [WebAppOperator]);
