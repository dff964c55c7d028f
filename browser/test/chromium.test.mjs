// End-to-end in Debian's Chromium (DevTools protocol): see lib/scenarios.mjs, lib/rplibs.mjs, lib/rpid.mjs,
// lib/rplibs_sites.mjs and lib/related.mjs.
import { rpLibScenarios } from './lib/rplibs.mjs';
import { browserSuite } from './lib/scenarios.mjs';
import { relatedSuite } from './lib/related.mjs';
import { rpidSuite } from './lib/rpid.mjs';
import { rpLibSiteScenarios } from './lib/rplibs_sites.mjs';

browserSuite('chromium', rpLibScenarios);
rpidSuite('chromium', rpLibSiteScenarios);
relatedSuite('chromium');
