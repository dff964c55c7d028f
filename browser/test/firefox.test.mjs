// End-to-end in Firefox ESR (WebDriver BiDi): see lib/scenarios.mjs, lib/rplibs.mjs, lib/rpid.mjs and
// lib/rplibs_sites.mjs.
import { rpLibScenarios } from './lib/rplibs.mjs';
import { browserSuite } from './lib/scenarios.mjs';
import { rpidSuite } from './lib/rpid.mjs';
import { rpLibSiteScenarios } from './lib/rplibs_sites.mjs';

browserSuite('firefox', rpLibScenarios);
rpidSuite('firefox', rpLibSiteScenarios);
