// End-to-end in Firefox ESR (WebDriver BiDi): see lib/scenarios.mjs, lib/rplibs.mjs, lib/rpid.mjs,
// lib/rplibs_sites.mjs and lib/related.mjs.
import { rpLibScenarios } from './lib/rplibs.mjs';
import { browserSuite } from './lib/scenarios.mjs';
import { relatedSuite } from './lib/related.mjs';
import { rpidSuite } from './lib/rpid.mjs';
import { rpLibSiteScenarios } from './lib/rplibs_sites.mjs';

browserSuite('firefox', rpLibScenarios);
rpidSuite('firefox', rpLibSiteScenarios);
relatedSuite('firefox');
