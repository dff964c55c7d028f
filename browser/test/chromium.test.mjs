// End-to-end in Debian's Chromium (DevTools protocol): see lib/scenarios.mjs, lib/rplibs.mjs, lib/rpid.mjs and
// lib/rplibs_sites.mjs.
import { rpLibScenarios } from './lib/rplibs.mjs';
import { browserSuite } from './lib/scenarios.mjs';
import { rpidSuite } from './lib/rpid.mjs';
import { rpLibSiteScenarios } from './lib/rplibs_sites.mjs';

browserSuite('chromium', rpLibScenarios);
rpidSuite('chromium', rpLibSiteScenarios);
