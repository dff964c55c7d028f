// End-to-end in Firefox ESR (WebDriver BiDi): see lib/scenarios.mjs and lib/rpid.mjs.
import { browserSuite } from './lib/scenarios.mjs';
import { rpidSuite } from './lib/rpid.mjs';

browserSuite('firefox');
rpidSuite('firefox');
