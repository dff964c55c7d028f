// End-to-end in Debian's Chromium (DevTools protocol): see lib/scenarios.mjs and lib/rplibs.mjs.
import { rpLibScenarios } from './lib/rplibs.mjs';
import { browserSuite } from './lib/scenarios.mjs';

browserSuite('chromium', rpLibScenarios);
