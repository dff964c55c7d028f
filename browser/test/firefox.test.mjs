// End-to-end in Firefox ESR (WebDriver BiDi): see lib/scenarios.mjs, lib/rplibs.mjs and lib/rpid.mjs.
import { rpLibScenarios } from './lib/rplibs.mjs';
import { browserSuite } from './lib/scenarios.mjs';
import { rpidSuite } from './lib/rpid.mjs';

browserSuite('firefox', rpLibScenarios);
rpidSuite('firefox');
