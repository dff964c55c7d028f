// End-to-end in Firefox ESR (WebDriver BiDi): see lib/scenarios.mjs and lib/rplibs.mjs.
import { rpLibScenarios } from './lib/rplibs.mjs';
import { browserSuite } from './lib/scenarios.mjs';

browserSuite('firefox', rpLibScenarios);
