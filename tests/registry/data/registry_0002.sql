BEGIN TRANSACTION;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
INSERT INTO "alembic_version" VALUES('0002');
CREATE TABLE annotation_group_members (
	group_id INTEGER NOT NULL, 
	annotation_id INTEGER NOT NULL, 
	parent_annotation_id INTEGER, 
	CONSTRAINT pk_annotation_group_members PRIMARY KEY (group_id, annotation_id), 
	CONSTRAINT fk_annotation_group_members_annotation_id_annotations FOREIGN KEY(annotation_id) REFERENCES annotations (id) ON DELETE CASCADE, 
	CONSTRAINT fk_annotation_group_members_group_id_annotation_groups FOREIGN KEY(group_id) REFERENCES annotation_groups (id) ON DELETE CASCADE, 
	CONSTRAINT fk_annotation_group_members_parent_annotation_id_annotations FOREIGN KEY(parent_annotation_id) REFERENCES annotations (id) ON DELETE CASCADE
);
CREATE TABLE annotation_groups (
	id INTEGER NOT NULL, 
	asset_id INTEGER NOT NULL, 
	classification JSON, 
	external_id VARCHAR(64), 
	CONSTRAINT pk_annotation_groups PRIMARY KEY (id), 
	CONSTRAINT fk_annotation_groups_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE CASCADE
);
CREATE TABLE annotation_metadata (
	annotation_id INTEGER NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value_text TEXT, 
	value_num FLOAT, 
	value JSON, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_annotation_metadata PRIMARY KEY (annotation_id, "key"), 
	CONSTRAINT fk_annotation_metadata_annotation_id_annotations FOREIGN KEY(annotation_id) REFERENCES annotations (id) ON DELETE CASCADE
);
CREATE TABLE annotation_relations (
	id INTEGER NOT NULL, 
	from_annotation_id INTEGER NOT NULL, 
	to_annotation_id INTEGER NOT NULL, 
	classification JSON, 
	external_id VARCHAR(64), 
	CONSTRAINT pk_annotation_relations PRIMARY KEY (id), 
	CONSTRAINT uq_annotation_relations_from_annotation_id_to_annotation_id UNIQUE (from_annotation_id, to_annotation_id), 
	CONSTRAINT fk_annotation_relations_from_annotation_id_annotations FOREIGN KEY(from_annotation_id) REFERENCES annotations (id) ON DELETE CASCADE, 
	CONSTRAINT fk_annotation_relations_to_annotation_id_annotations FOREIGN KEY(to_annotation_id) REFERENCES annotations (id) ON DELETE CASCADE
);
CREATE TABLE annotation_tags (
	annotation_id INTEGER NOT NULL, 
	tag VARCHAR(255) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_annotation_tags PRIMARY KEY (annotation_id, tag), 
	CONSTRAINT fk_annotation_tags_annotation_id_annotations FOREIGN KEY(annotation_id) REFERENCES annotations (id) ON DELETE CASCADE
);
CREATE TABLE annotations (
	id INTEGER NOT NULL, 
	asset_id INTEGER NOT NULL, 
	frame_id INTEGER, 
	is_normalized BOOLEAN NOT NULL, 
	model_version_id INTEGER, 
	detection_model VARCHAR(255), 
	annotator VARCHAR(255), 
	is_validated BOOLEAN NOT NULL, 
	quality_score FLOAT, 
	track_id INTEGER, 
	import_batch_id INTEGER, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	label_class_id INTEGER, 
	geometry_type VARCHAR(12) NOT NULL, 
	bbox_x FLOAT, 
	bbox_y FLOAT, 
	bbox_w FLOAT, 
	bbox_h FLOAT, 
	polygon JSON, 
	mask_uri TEXT, 
	keypoints JSON, 
	num_keypoints INTEGER, 
	caption TEXT, 
	area FLOAT, 
	iscrowd BOOLEAN NOT NULL, 
	attributes JSON, 
	extra JSON, 
	source VARCHAR(10) NOT NULL, 
	confidence FLOAT, 
	external_id BIGINT, 
	source_key TEXT, 
	CONSTRAINT pk_annotations PRIMARY KEY (id), 
	CONSTRAINT fk_annotations_frame_id_frames FOREIGN KEY(frame_id) REFERENCES frames (id) ON DELETE SET NULL, 
	CONSTRAINT fk_annotations_import_batch_id_import_batches FOREIGN KEY(import_batch_id) REFERENCES import_batches (id) ON DELETE SET NULL, 
	CONSTRAINT fk_annotations_label_class_id_label_classes FOREIGN KEY(label_class_id) REFERENCES label_classes (id) ON DELETE RESTRICT, 
	CONSTRAINT ck_annotations_geometry_type CHECK (geometry_type IN ('bbox','polygon','mask','keypoints','polyline','label','caption')), 
	CONSTRAINT fk_annotations_track_id_tracks FOREIGN KEY(track_id) REFERENCES tracks (id) ON DELETE SET NULL, 
	CONSTRAINT fk_annotations_model_version_id_model_versions FOREIGN KEY(model_version_id) REFERENCES model_versions (id) ON DELETE SET NULL, 
	CONSTRAINT ck_annotations_source CHECK (source IN ('human','model')), 
	CONSTRAINT fk_annotations_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE CASCADE
);
INSERT INTO "annotations" VALUES(1,1,NULL,0,NULL,NULL,NULL,0,NULL,NULL,1,'2026-12-02 08:13:47.558715','2026-12-02 08:13:47.558715',1,'bbox',1.0,2.0,10.0,5.0,NULL,NULL,NULL,NULL,NULL,50.0,0,'{"occluded":false}','{"_dsgen":{"area":50}}','human',NULL,10,'coco:10');
INSERT INTO "annotations" VALUES(2,2,NULL,0,NULL,NULL,NULL,0,NULL,NULL,1,'2026-12-02 08:13:47.558715','2026-12-02 08:13:47.558715',1,'polygon',1.0,2.0,10.0,10.0,'[[1.0,2.0,11.0,2.0,11.0,12.0]]',NULL,NULL,NULL,NULL,45.0,0,NULL,'{"_dsgen":{"area":50}}','human',NULL,11,'coco:11');
INSERT INTO "annotations" VALUES(3,3,NULL,0,NULL,NULL,NULL,0,NULL,NULL,1,'2026-12-02 08:13:47.558715','2026-12-02 08:13:47.558715',2,'keypoints',5.0,5.0,20.0,20.0,NULL,NULL,'[6.0,6.0,2.0,10.0,10.0,1.0]',2,NULL,400.0,0,NULL,'{"_dsgen":{"area":400}}','human',NULL,12,'coco:12');
INSERT INTO "annotations" VALUES(4,4,NULL,0,NULL,NULL,NULL,0,NULL,NULL,1,'2026-12-02 08:13:47.558715','2026-12-02 08:13:47.558715',2,'bbox',0.0,0.0,8.0,8.0,NULL,NULL,NULL,NULL,NULL,64.0,0,NULL,'{"_dsgen":{"area":64}}','human',NULL,13,'coco:13');
CREATE TABLE api_keys (
	id INTEGER NOT NULL, 
	user_id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	key_hash VARCHAR(255) NOT NULL, 
	scopes JSON NOT NULL, 
	last_used_at DATETIME, 
	total_requests BIGINT NOT NULL, 
	expires_at DATETIME, 
	created_at DATETIME NOT NULL, 
	revoked_at DATETIME, 
	CONSTRAINT pk_api_keys PRIMARY KEY (id), 
	CONSTRAINT uq_api_keys_key_hash UNIQUE (key_hash), 
	CONSTRAINT fk_api_keys_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE TABLE asset_metadata (
	asset_id INTEGER NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value_text TEXT, 
	value_num FLOAT, 
	value JSON, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_asset_metadata PRIMARY KEY (asset_id, "key"), 
	CONSTRAINT fk_asset_metadata_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE CASCADE
);
CREATE TABLE asset_tags (
	asset_id INTEGER NOT NULL, 
	tag VARCHAR(255) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_asset_tags PRIMARY KEY (asset_id, tag), 
	CONSTRAINT fk_asset_tags_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE CASCADE
);
CREATE TABLE assets (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	asset_type VARCHAR(10) NOT NULL, 
	source_key TEXT NOT NULL, 
	file_name TEXT NOT NULL, 
	storage_uri TEXT, 
	sha256 VARCHAR(64), 
	bytes BIGINT, 
	width INTEGER, 
	height INTEGER, 
	mime_type VARCHAR(50), 
	duration_ms INTEGER, 
	fps FLOAT, 
	frame_count INTEGER, 
	codec VARCHAR(50), 
	exif JSON, 
	thumbnail_uri TEXT, 
	external_id BIGINT, 
	extra JSON, 
	import_batch_id INTEGER, 
	status VARCHAR(20) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	deleted_at DATETIME, 
	CONSTRAINT pk_assets PRIMARY KEY (id), 
	CONSTRAINT fk_assets_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT fk_assets_import_batch_id_import_batches FOREIGN KEY(import_batch_id) REFERENCES import_batches (id) ON DELETE SET NULL, 
	CONSTRAINT ck_assets_asset_type CHECK (asset_type IN ('image','video','text')), 
	CONSTRAINT uq_assets_project_id_source_key UNIQUE (project_id, source_key)
);
INSERT INTO "assets" VALUES(1,1,'image','f/1.jpg','f/1.jpg',NULL,NULL,NULL,64,48,NULL,NULL,NULL,NULL,NULL,NULL,NULL,1,NULL,1,'referenced','2026-12-02 08:13:47.558715','2026-12-02 08:13:47.558715',NULL);
INSERT INTO "assets" VALUES(2,1,'image','f/2.jpg','f/2.jpg',NULL,NULL,NULL,64,48,NULL,NULL,NULL,NULL,NULL,NULL,NULL,2,NULL,1,'referenced','2026-12-02 08:13:47.558715','2026-12-02 08:13:47.558715',NULL);
INSERT INTO "assets" VALUES(3,1,'image','f/3.jpg','f/3.jpg',NULL,NULL,NULL,64,48,NULL,NULL,NULL,NULL,NULL,NULL,NULL,3,NULL,1,'referenced','2026-12-02 08:13:47.558715','2026-12-02 08:13:47.558715',NULL);
INSERT INTO "assets" VALUES(4,1,'image','f/4.jpg','f/4.jpg',NULL,NULL,NULL,64,48,NULL,NULL,NULL,NULL,NULL,NULL,NULL,4,NULL,1,'referenced','2026-12-02 08:13:47.558715','2026-12-02 08:13:47.558715',NULL);
CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	actor VARCHAR(255), 
	project_id INTEGER, 
	action VARCHAR(100) NOT NULL, 
	entity_type VARCHAR(50), 
	entity_ids JSON, 
	detail JSON, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_audit_log PRIMARY KEY (id), 
	CONSTRAINT fk_audit_log_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE
);
INSERT INTO "audit_log" VALUES(1,NULL,1,'project.create','project','[1]','null','2026-12-02 08:13:47.554095');
INSERT INTO "audit_log" VALUES(2,'test',1,'import.coco','import_batch','[1]','{"file": "/tmp/fx/out/c.json", "format": "coco/dataset", "images": 4, "images_new": 4, "images_existing": 0, "images_updated": 0, "objects_new": 4, "objects_merged": 0, "objects_unchanged": 0, "objects_deleted": 0, "objects_skipped": 0, "classes_new": 2, "masks": 0, "tracks": 0, "conflicts": 0, "kind": "dataset"}','2026-12-02 08:13:47.581935');
INSERT INTO "audit_log" VALUES(3,NULL,1,'version.create','dataset_version','[1]','{"tag": "v1", "query": "", "split": {"train": 0.5, "val": 0.5}, "seed": 0}','2026-12-02 08:13:47.591867');
INSERT INTO "audit_log" VALUES(4,NULL,1,'version.freeze','dataset_version','[1]','{"tag": "v1", "content_hash": "8ad0cb4692f2dba955032e8e02b9506c096e55cfeca968cb542ad810f22eb1f5", "splits": {"train": 2, "val": 2}}','2026-12-02 08:13:47.647543');
CREATE TABLE change_events (
	seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	project_id INTEGER, 
	entity VARCHAR(50) NOT NULL, 
	op VARCHAR(30) NOT NULL, 
	entity_id BIGINT, 
	count INTEGER NOT NULL, 
	detail JSON, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT fk_change_events_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE
);
INSERT INTO "change_events" VALUES(1,1,'projects','create',1,1,'null','2026-12-02 08:13:47.554970');
INSERT INTO "change_events" VALUES(2,1,'assets','import',1,4,'{"batch": 1, "source": "human", "new": 4, "updated": 0}','2026-12-02 08:13:47.579851');
INSERT INTO "change_events" VALUES(3,1,'annotations','import',1,4,'{"batch": 1, "source": "human", "new": 4, "merged": 0, "deleted": 0, "classes_new": 2}','2026-12-02 08:13:47.581452');
INSERT INTO "change_events" VALUES(4,1,'dataset_versions','create',1,1,'{"tag": "v1"}','2026-12-02 08:13:47.592124');
INSERT INTO "change_events" VALUES(5,1,'dataset_versions','frozen',1,4,'{"tag": "v1", "content_hash": "8ad0cb4692f2dba955032e8e02b9506c096e55cfeca968cb542ad810f22eb1f5", "actor": null}','2026-12-02 08:13:47.648177');
CREATE TABLE dataset_splits (
	id INTEGER NOT NULL, 
	dataset_version_id INTEGER NOT NULL, 
	split VARCHAR(20) NOT NULL, 
	ratio FLOAT, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_dataset_splits PRIMARY KEY (id), 
	CONSTRAINT ck_dataset_splits_split CHECK (split IN ('train','val','test','unassigned')), 
	CONSTRAINT uq_dataset_splits_dataset_version_id_split UNIQUE (dataset_version_id, split), 
	CONSTRAINT fk_dataset_splits_dataset_version_id_dataset_versions FOREIGN KEY(dataset_version_id) REFERENCES dataset_versions (id) ON DELETE CASCADE
);
INSERT INTO "dataset_splits" VALUES(1,1,'train',0.5,'2026-12-02 08:13:47.609766');
INSERT INTO "dataset_splits" VALUES(2,1,'val',0.5,'2026-12-02 08:13:47.610626');
CREATE TABLE dataset_version_annotations (
	dataset_version_id INTEGER NOT NULL, 
	annotation_id INTEGER NOT NULL, 
	asset_id INTEGER NOT NULL, 
	track_id INTEGER, 
	label_class_id INTEGER, 
	geometry_type VARCHAR(12) NOT NULL, 
	bbox_x FLOAT, 
	bbox_y FLOAT, 
	bbox_w FLOAT, 
	bbox_h FLOAT, 
	polygon JSON, 
	mask_uri TEXT, 
	keypoints JSON, 
	num_keypoints INTEGER, 
	caption TEXT, 
	area FLOAT, 
	iscrowd BOOLEAN NOT NULL, 
	attributes JSON, 
	extra JSON, 
	source VARCHAR(10) NOT NULL, 
	confidence FLOAT, 
	external_id BIGINT, 
	source_key TEXT, 
	CONSTRAINT pk_dataset_version_annotations PRIMARY KEY (dataset_version_id, annotation_id), 
	CONSTRAINT fk_dataset_version_annotations_dataset_version_id_dataset_versions FOREIGN KEY(dataset_version_id) REFERENCES dataset_versions (id) ON DELETE CASCADE, 
	CONSTRAINT fk_dataset_version_annotations_label_class_id_label_classes FOREIGN KEY(label_class_id) REFERENCES label_classes (id) ON DELETE RESTRICT
);
INSERT INTO "dataset_version_annotations" VALUES(1,1,1,NULL,1,'bbox',1.0,2.0,10.0,5.0,NULL,NULL,NULL,NULL,NULL,50.0,0,'{"occluded":false}','{"_dsgen":{"area":50}}','human',NULL,10,'coco:10');
INSERT INTO "dataset_version_annotations" VALUES(1,2,2,NULL,1,'polygon',1.0,2.0,10.0,10.0,'[[1.0,2.0,11.0,2.0,11.0,12.0]]',NULL,NULL,NULL,NULL,45.0,0,NULL,'{"_dsgen":{"area":50}}','human',NULL,11,'coco:11');
INSERT INTO "dataset_version_annotations" VALUES(1,3,3,NULL,2,'keypoints',5.0,5.0,20.0,20.0,NULL,NULL,'[6.0,6.0,2.0,10.0,10.0,1.0]',2,NULL,400.0,0,NULL,'{"_dsgen":{"area":400}}','human',NULL,12,'coco:12');
INSERT INTO "dataset_version_annotations" VALUES(1,4,4,NULL,2,'bbox',0.0,0.0,8.0,8.0,NULL,NULL,NULL,NULL,NULL,64.0,0,NULL,'{"_dsgen":{"area":64}}','human',NULL,13,'coco:13');
CREATE TABLE dataset_version_assets (
	dataset_version_id INTEGER NOT NULL, 
	asset_id INTEGER NOT NULL, 
	split_id INTEGER NOT NULL, 
	CONSTRAINT pk_dataset_version_assets PRIMARY KEY (dataset_version_id, asset_id), 
	CONSTRAINT fk_dataset_version_assets_dataset_version_id_dataset_versions FOREIGN KEY(dataset_version_id) REFERENCES dataset_versions (id) ON DELETE CASCADE, 
	CONSTRAINT fk_dataset_version_assets_split_id_dataset_splits FOREIGN KEY(split_id) REFERENCES dataset_splits (id) ON DELETE CASCADE, 
	CONSTRAINT fk_dataset_version_assets_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE RESTRICT
);
INSERT INTO "dataset_version_assets" VALUES(1,1,1);
INSERT INTO "dataset_version_assets" VALUES(1,2,2);
INSERT INTO "dataset_version_assets" VALUES(1,3,1);
INSERT INTO "dataset_version_assets" VALUES(1,4,2);
CREATE TABLE dataset_versions (
	id INTEGER NOT NULL, 
	dataset_id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	version_tag VARCHAR(50) NOT NULL, 
	ontology_version_id INTEGER, 
	status VARCHAR(20) NOT NULL, 
	is_frozen BOOLEAN NOT NULL, 
	"query" TEXT, 
	filter_config JSON, 
	split_config JSON, 
	seed INTEGER NOT NULL, 
	content_hash VARCHAR(64), 
	freeze_requested_at DATETIME, 
	frozen_at DATETIME, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_dataset_versions PRIMARY KEY (id), 
	CONSTRAINT fk_dataset_versions_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE, 
	CONSTRAINT fk_dataset_versions_ontology_version_id_ontology_versions FOREIGN KEY(ontology_version_id) REFERENCES ontology_versions (id) ON DELETE RESTRICT, 
	CONSTRAINT ck_dataset_versions_status CHECK (status IN ('draft','freezing','frozen','failed')), 
	CONSTRAINT uq_dataset_versions_project_id_version_tag UNIQUE (project_id, version_tag), 
	CONSTRAINT fk_dataset_versions_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE
);
INSERT INTO "dataset_versions" VALUES(1,1,1,'v1',1,'frozen',1,'','{"include_model": false}','{"train": 0.5, "val": 0.5}',0,'8ad0cb4692f2dba955032e8e02b9506c096e55cfeca968cb542ad810f22eb1f5',NULL,'2026-12-02 08:13:47.642978','2026-12-02 08:13:47.590864');
CREATE TABLE datasets (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	description TEXT, 
	format VARCHAR(50), 
	status VARCHAR(20) NOT NULL, 
	validation_result JSON, 
	created_at DATETIME NOT NULL, 
	deleted_at DATETIME, 
	CONSTRAINT pk_datasets PRIMARY KEY (id), 
	CONSTRAINT uq_datasets_project_id_name UNIQUE (project_id, name), 
	CONSTRAINT ck_datasets_format CHECK (format IS NULL OR format IN ('coco','yolo','imagenet','pascal_voc','datamaker')), 
	CONSTRAINT fk_datasets_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE
);
INSERT INTO "datasets" VALUES(1,1,'p',NULL,NULL,'ready',NULL,'2026-12-02 08:13:47.551382',NULL);
CREATE TABLE deployments (
	id INTEGER NOT NULL, 
	model_version_id INTEGER NOT NULL, 
	name VARCHAR(50) NOT NULL, 
	target VARCHAR(10) NOT NULL, 
	endpoint_url VARCHAR(255) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	total_requests BIGINT NOT NULL, 
	last_request_at DATETIME, 
	deployed_at DATETIME NOT NULL, 
	deleted_at DATETIME, 
	CONSTRAINT pk_deployments PRIMARY KEY (id), 
	CONSTRAINT uq_deployments_endpoint_url UNIQUE (endpoint_url), 
	CONSTRAINT ck_deployments_status CHECK (status IN ('deploying','active','inactive','error')), 
	CONSTRAINT fk_deployments_model_version_id_model_versions FOREIGN KEY(model_version_id) REFERENCES model_versions (id) ON DELETE CASCADE, 
	CONSTRAINT ck_deployments_target CHECK (target IN ('edge','cloud'))
);
CREATE TABLE embedding_outbox (
	id INTEGER NOT NULL, 
	annotation_id INTEGER, 
	asset_id INTEGER, 
	embedding_version_id INTEGER NOT NULL, 
	operation VARCHAR(10) NOT NULL, 
	status VARCHAR(10) NOT NULL, 
	retry_count INTEGER NOT NULL, 
	error TEXT, 
	created_at DATETIME NOT NULL, 
	synced_at DATETIME, 
	CONSTRAINT pk_embedding_outbox PRIMARY KEY (id), 
	CONSTRAINT ck_embedding_outbox_operation CHECK (operation IN ('upsert','delete')), 
	CONSTRAINT ck_embedding_outbox_target CHECK (annotation_id IS NOT NULL OR asset_id IS NOT NULL), 
	CONSTRAINT ck_embedding_outbox_status CHECK (status IN ('pending','synced','failed')), 
	CONSTRAINT fk_embedding_outbox_embedding_version_id_embedding_versions FOREIGN KEY(embedding_version_id) REFERENCES embedding_versions (id) ON DELETE CASCADE
);
CREATE TABLE embedding_versions (
	id INTEGER NOT NULL, 
	project_id INTEGER, 
	name VARCHAR(100) NOT NULL, 
	model_name VARCHAR(255) NOT NULL, 
	model_version VARCHAR(100), 
	dimension INTEGER NOT NULL, 
	level VARCHAR(10) NOT NULL, 
	is_active BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_embedding_versions PRIMARY KEY (id), 
	CONSTRAINT uq_embedding_versions_name UNIQUE (name), 
	CONSTRAINT fk_embedding_versions_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT ck_embedding_versions_level CHECK (level IN ('object','image'))
);
CREATE TABLE evaluations (
	id INTEGER NOT NULL, 
	model_version_id INTEGER NOT NULL, 
	dataset_version_id INTEGER, 
	model_artifact_id INTEGER, 
	split VARCHAR(20) NOT NULL, 
	precision FLOAT NOT NULL, 
	recall FLOAT NOT NULL, 
	f1_score FLOAT NOT NULL, 
	map50 FLOAT NOT NULL, 
	map50_95 FLOAT NOT NULL, 
	per_class JSON, 
	extra JSON, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_evaluations PRIMARY KEY (id), 
	CONSTRAINT fk_evaluations_dataset_version_id_dataset_versions FOREIGN KEY(dataset_version_id) REFERENCES dataset_versions (id) ON DELETE RESTRICT, 
	CONSTRAINT fk_evaluations_model_artifact_id_model_artifacts FOREIGN KEY(model_artifact_id) REFERENCES model_artifacts (id) ON DELETE SET NULL, 
	CONSTRAINT fk_evaluations_model_version_id_model_versions FOREIGN KEY(model_version_id) REFERENCES model_versions (id) ON DELETE CASCADE
);
CREATE TABLE export_jobs (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	target VARCHAR(20) NOT NULL, 
	filter_snapshot JSON, 
	dataset_version_id INTEGER, 
	status VARCHAR(20) NOT NULL, 
	payload_uri TEXT, 
	external_url TEXT, 
	log TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_export_jobs PRIMARY KEY (id), 
	CONSTRAINT fk_export_jobs_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT fk_export_jobs_dataset_version_id_dataset_versions FOREIGN KEY(dataset_version_id) REFERENCES dataset_versions (id) ON DELETE SET NULL, 
	CONSTRAINT ck_export_jobs_target CHECK (target IN ('cvat','coco','yolo')), 
	CONSTRAINT ck_export_jobs_status CHECK (status IN ('queued','running','done','failed'))
);
CREATE TABLE frames (
	id INTEGER NOT NULL, 
	video_asset_id INTEGER NOT NULL, 
	frame_idx INTEGER NOT NULL, 
	timestamp_ms INTEGER, 
	image_asset_id INTEGER, 
	CONSTRAINT pk_frames PRIMARY KEY (id), 
	CONSTRAINT fk_frames_video_asset_id_assets FOREIGN KEY(video_asset_id) REFERENCES assets (id) ON DELETE CASCADE, 
	CONSTRAINT fk_frames_image_asset_id_assets FOREIGN KEY(image_asset_id) REFERENCES assets (id) ON DELETE SET NULL, 
	CONSTRAINT uq_frames_video_asset_id_frame_idx UNIQUE (video_asset_id, frame_idx)
);
CREATE TABLE import_batches (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	format VARCHAR(50) NOT NULL, 
	source_uri TEXT NOT NULL, 
	content_sha256 VARCHAR(64) NOT NULL, 
	images_sha256 VARCHAR(64), 
	status VARCHAR(20) NOT NULL, 
	counts JSON, 
	report JSON, 
	header JSON, 
	actor VARCHAR(255), 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_import_batches PRIMARY KEY (id), 
	CONSTRAINT fk_import_batches_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE
);
INSERT INTO "import_batches" VALUES(1,1,'coco/dataset','/tmp/fx/out/c.json','ec415425e6c6d1abca4bf5f654adc593d9d3b9534892194f4f970177df8aa094',NULL,'done','{"images": 4, "images_new": 4, "images_existing": 0, "images_updated": 0, "objects_new": 4, "objects_merged": 0, "objects_unchanged": 0, "objects_deleted": 0, "objects_skipped": 0, "classes_new": 2, "masks": 0, "tracks": 0, "conflicts": 0}','{"errors": 0, "warnings": 0, "skipped": {"annotations": 0, "images": 0}}','{"info": {"description": "fixture"}, "licenses": []}','test','2026-12-02 08:13:47.558302');
CREATE TABLE insight_views (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	"query" TEXT NOT NULL, 
	charts JSON NOT NULL, 
	visualization JSON, 
	saved_by VARCHAR(255), 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_insight_views PRIMARY KEY (id), 
	CONSTRAINT uq_insight_views_project_id_name UNIQUE (project_id, name), 
	CONSTRAINT fk_insight_views_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE TABLE label_classes (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	"key" VARCHAR(128) NOT NULL, 
	display_name VARCHAR(255) NOT NULL, 
	supercategory VARCHAR(255), 
	synonyms JSON NOT NULL, 
	color VARCHAR(20), 
	shape_type VARCHAR(20), 
	keypoint_spec JSON, 
	attribute_schema JSON, 
	external_id INTEGER, 
	extra JSON, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_label_classes PRIMARY KEY (id), 
	CONSTRAINT ck_label_classes_shape_type CHECK (shape_type IS NULL OR shape_type IN ('bbox','polygon','mask','keypoints','polyline','label','caption')), 
	CONSTRAINT fk_label_classes_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT uq_label_classes_project_id_key UNIQUE (project_id, "key")
);
INSERT INTO "label_classes" VALUES(1,1,'car','car','vehicle','[]',NULL,'bbox','null',NULL,3,'null','2026-12-02 08:13:47.561922');
INSERT INTO "label_classes" VALUES(2,1,'person','person','','[]',NULL,'keypoints','{"keypoints": ["a", "b"], "skeleton": [[1, 2]]}',NULL,7,'null','2026-12-02 08:13:47.561926');
CREATE TABLE model_artifacts (
	id INTEGER NOT NULL, 
	model_version_id INTEGER NOT NULL, 
	role VARCHAR(20) NOT NULL, 
	format VARCHAR(20) NOT NULL, 
	device VARCHAR(20) NOT NULL, 
	precision VARCHAR(10) NOT NULL, 
	storage_uri TEXT NOT NULL, 
	sha256 VARCHAR(64), 
	size_bytes BIGINT, 
	opset INTEGER, 
	ir_version INTEGER, 
	framework VARCHAR(50), 
	framework_version VARCHAR(50), 
	compat JSON, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_model_artifacts PRIMARY KEY (id), 
	CONSTRAINT ck_model_artifacts_format CHECK (format IN ('ckpt','onnx','trt','torchscript','openvino','tflite','onnx-external')), 
	CONSTRAINT ck_model_artifacts_device CHECK (device IN ('cpu','cuda','tensorrt','mps','npu','web')), 
	CONSTRAINT ck_model_artifacts_precision CHECK (precision IN ('fp32','fp16','int8','mixed')), 
	CONSTRAINT fk_model_artifacts_model_version_id_model_versions FOREIGN KEY(model_version_id) REFERENCES model_versions (id) ON DELETE CASCADE
);
CREATE TABLE model_versions (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	model_id INTEGER NOT NULL, 
	human_id VARCHAR(32) NOT NULL, 
	parent_model_version_id INTEGER, 
	init_from_artifact_id INTEGER, 
	training_data_version_id INTEGER, 
	ontology_version_id INTEGER, 
	recipe VARCHAR(100), 
	framework VARCHAR(50), 
	framework_version VARCHAR(50), 
	status VARCHAR(20) NOT NULL, 
	error TEXT, 
	metrics JSON, 
	training_config JSON, 
	incremental_info JSON, 
	is_frozen BOOLEAN NOT NULL, 
	dagster_run_id VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	CONSTRAINT pk_model_versions PRIMARY KEY (id), 
	CONSTRAINT fk_model_versions_parent_model_version_id_model_versions FOREIGN KEY(parent_model_version_id) REFERENCES model_versions (id) ON DELETE SET NULL, 
	CONSTRAINT fk_model_versions_init_from_artifact_id_model_artifacts FOREIGN KEY(init_from_artifact_id) REFERENCES model_artifacts (id) ON DELETE SET NULL, 
	CONSTRAINT ck_model_versions_status CHECK (status IN ('pending','running','succeeded','failed','cancelled')), 
	CONSTRAINT fk_model_versions_model_id_models FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE, 
	CONSTRAINT fk_model_versions_training_data_version_id_dataset_versions FOREIGN KEY(training_data_version_id) REFERENCES dataset_versions (id) ON DELETE RESTRICT, 
	CONSTRAINT fk_model_versions_ontology_version_id_ontology_versions FOREIGN KEY(ontology_version_id) REFERENCES ontology_versions (id) ON DELETE RESTRICT, 
	CONSTRAINT fk_model_versions_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT uq_model_versions_project_id_human_id UNIQUE (project_id, human_id)
);
CREATE TABLE models (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	task VARCHAR(10), 
	description TEXT, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_models PRIMARY KEY (id), 
	CONSTRAINT ck_models_task CHECK (task IS NULL OR task IN ('det','pose','seg','cls','ocr')), 
	CONSTRAINT fk_models_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT uq_models_project_id_name UNIQUE (project_id, name)
);
CREATE TABLE ontology_version_classes (
	ontology_version_id INTEGER NOT NULL, 
	label_class_id INTEGER NOT NULL, 
	display_name VARCHAR(255) NOT NULL, 
	CONSTRAINT pk_ontology_version_classes PRIMARY KEY (ontology_version_id, label_class_id), 
	CONSTRAINT fk_ontology_version_classes_ontology_version_id_ontology_versions FOREIGN KEY(ontology_version_id) REFERENCES ontology_versions (id) ON DELETE CASCADE, 
	CONSTRAINT fk_ontology_version_classes_label_class_id_label_classes FOREIGN KEY(label_class_id) REFERENCES label_classes (id) ON DELETE CASCADE
);
INSERT INTO "ontology_version_classes" VALUES(1,1,'car');
INSERT INTO "ontology_version_classes" VALUES(1,2,'person');
CREATE TABLE ontology_versions (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	version_tag VARCHAR(50) NOT NULL, 
	is_frozen BOOLEAN NOT NULL, 
	parent_id INTEGER, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_ontology_versions PRIMARY KEY (id), 
	CONSTRAINT uq_ontology_versions_project_id_version_tag UNIQUE (project_id, version_tag), 
	CONSTRAINT fk_ontology_versions_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT fk_ontology_versions_parent_id_ontology_versions FOREIGN KEY(parent_id) REFERENCES ontology_versions (id) ON DELETE SET NULL
);
INSERT INTO "ontology_versions" VALUES(1,1,'o1',1,NULL,'2026-12-02 08:13:47.552312');
CREATE TABLE projects (
	id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	description TEXT, 
	owner_id INTEGER, 
	source VARCHAR(50), 
	status VARCHAR(20) NOT NULL, 
	default_ontology_version_id INTEGER, 
	tags JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	deleted_at DATETIME, 
	CONSTRAINT pk_projects PRIMARY KEY (id), 
	CONSTRAINT uq_projects_name UNIQUE (name), 
	CONSTRAINT fk_projects_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE SET NULL, 
	CONSTRAINT fk_projects_default_ontology_version_id_ontology_versions FOREIGN KEY(default_ontology_version_id) REFERENCES ontology_versions (id) ON DELETE SET NULL
);
INSERT INTO "projects" VALUES(1,'p',NULL,NULL,NULL,'ready',1,'[]','2026-12-02 08:13:47.546384',NULL);
CREATE TABLE track_members (
	track_id INTEGER NOT NULL, 
	annotation_id INTEGER NOT NULL, 
	sequence_idx INTEGER NOT NULL, 
	keyframe BOOLEAN, 
	CONSTRAINT pk_track_members PRIMARY KEY (track_id, annotation_id), 
	CONSTRAINT fk_track_members_annotation_id_annotations FOREIGN KEY(annotation_id) REFERENCES annotations (id) ON DELETE CASCADE, 
	CONSTRAINT fk_track_members_track_id_tracks FOREIGN KEY(track_id) REFERENCES tracks (id) ON DELETE CASCADE
);
CREATE TABLE tracks (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	external_id VARCHAR(128) NOT NULL, 
	source_asset_id INTEGER, 
	label_class_id INTEGER, 
	start_frame INTEGER, 
	end_frame INTEGER, 
	object_count INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_tracks PRIMARY KEY (id), 
	CONSTRAINT fk_tracks_source_asset_id_assets FOREIGN KEY(source_asset_id) REFERENCES assets (id) ON DELETE SET NULL, 
	CONSTRAINT fk_tracks_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT uq_tracks_project_id_external_id UNIQUE (project_id, external_id), 
	CONSTRAINT fk_tracks_label_class_id_label_classes FOREIGN KEY(label_class_id) REFERENCES label_classes (id) ON DELETE SET NULL
);
CREATE TABLE training_epoch_metrics (
	id INTEGER NOT NULL, 
	model_version_id INTEGER NOT NULL, 
	epoch INTEGER NOT NULL, 
	step INTEGER, 
	train_loss FLOAT, 
	val_loss FLOAT, 
	precision FLOAT, 
	recall FLOAT, 
	map50 FLOAT, 
	map50_95 FLOAT, 
	extra JSON, 
	recorded_at DATETIME NOT NULL, 
	CONSTRAINT pk_training_epoch_metrics PRIMARY KEY (id), 
	CONSTRAINT uq_training_epoch_metrics_model_version_id_epoch UNIQUE (model_version_id, epoch), 
	CONSTRAINT fk_training_epoch_metrics_model_version_id_model_versions FOREIGN KEY(model_version_id) REFERENCES model_versions (id) ON DELETE CASCADE
);
CREATE TABLE usage_records (
	id INTEGER NOT NULL, 
	user_id INTEGER, 
	project_id INTEGER, 
	resource_type VARCHAR(50) NOT NULL, 
	amount FLOAT NOT NULL, 
	unit VARCHAR(20) NOT NULL, 
	model_version_id INTEGER, 
	dagster_run_id VARCHAR(64), 
	cost_usd FLOAT, 
	recorded_at DATETIME NOT NULL, 
	CONSTRAINT pk_usage_records PRIMARY KEY (id), 
	CONSTRAINT fk_usage_records_model_version_id_model_versions FOREIGN KEY(model_version_id) REFERENCES model_versions (id) ON DELETE SET NULL, 
	CONSTRAINT fk_usage_records_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE, 
	CONSTRAINT fk_usage_records_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE TABLE users (
	id INTEGER NOT NULL, 
	email VARCHAR(255) NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	hashed_password VARCHAR(255), 
	external_uid VARCHAR(100), 
	"plan" VARCHAR(20) NOT NULL, 
	gpu_hours_limit FLOAT, 
	storage_gb_limit FLOAT, 
	created_at DATETIME NOT NULL, 
	last_login_at DATETIME, 
	deleted_at DATETIME, 
	CONSTRAINT pk_users PRIMARY KEY (id), 
	CONSTRAINT uq_users_email UNIQUE (email), 
	CONSTRAINT uq_users_external_uid UNIQUE (external_uid), 
	CONSTRAINT ck_users_plan CHECK (plan IN ('free','pro','enterprise'))
);
CREATE INDEX ix_api_keys_user_id ON api_keys (user_id);
CREATE INDEX ix_audit_log_project_id ON audit_log (project_id);
CREATE INDEX ix_audit_log_action ON audit_log (action);
CREATE INDEX ix_change_events_entity_seq ON change_events (entity, seq);
CREATE INDEX ix_datasets_project_id ON datasets (project_id);
CREATE INDEX ix_embedding_versions_project_id ON embedding_versions (project_id);
CREATE INDEX ix_import_batches_dedup ON import_batches (project_id, content_sha256);
CREATE INDEX ix_import_batches_project_id ON import_batches (project_id);
CREATE INDEX ix_label_classes_project_id ON label_classes (project_id);
CREATE INDEX ix_ontology_versions_project_id ON ontology_versions (project_id);
CREATE INDEX ix_assets_height ON assets (height);
CREATE INDEX ix_assets_width ON assets (width);
CREATE INDEX ix_assets_project_external_id ON assets (project_id, external_id);
CREATE INDEX ix_assets_project_file_name ON assets (project_id, file_name);
CREATE INDEX ix_assets_project_sha256 ON assets (project_id, sha256);
CREATE INDEX ix_dataset_versions_dataset_id ON dataset_versions (dataset_id);
CREATE INDEX ix_embedding_outbox_annotation_id ON embedding_outbox (annotation_id);
CREATE INDEX ix_embedding_outbox_status ON embedding_outbox (status);
CREATE INDEX ix_ontology_version_classes_label_class_id ON ontology_version_classes (label_class_id);
CREATE INDEX ix_annotation_groups_asset_id ON annotation_groups (asset_id);
CREATE INDEX ix_asset_metadata_key_num ON asset_metadata ("key", value_num);
CREATE INDEX ix_asset_metadata_key_text ON asset_metadata ("key", value_text);
CREATE INDEX ix_asset_tags_tag_asset ON asset_tags (tag, asset_id);
CREATE INDEX ix_dataset_version_annotations_version_asset ON dataset_version_annotations (dataset_version_id, asset_id);
CREATE INDEX ix_export_jobs_project_id ON export_jobs (project_id);
CREATE INDEX ix_frames_image_asset_id ON frames (image_asset_id);
CREATE INDEX ix_model_versions_model_id ON model_versions (model_id);
CREATE INDEX ix_annotations_label_asset ON annotations (label_class_id, asset_id);
CREATE INDEX ix_annotations_confidence ON annotations (confidence, asset_id) WHERE confidence IS NOT NULL;
CREATE UNIQUE INDEX uq_annotations_asset_source_key ON annotations (asset_id, source_key);
CREATE INDEX ix_annotations_track_id ON annotations (track_id) WHERE track_id IS NOT NULL;
CREATE INDEX ix_annotations_model_version_id ON annotations (model_version_id) WHERE model_version_id IS NOT NULL;
CREATE INDEX ix_annotations_label_confidence ON annotations (label_class_id, confidence, asset_id) WHERE confidence IS NOT NULL;
CREATE INDEX ix_dataset_version_assets_asset_id ON dataset_version_assets (asset_id);
CREATE INDEX ix_dataset_version_assets_split_id ON dataset_version_assets (split_id);
CREATE INDEX ix_deployments_model_version_id ON deployments (model_version_id);
CREATE INDEX ix_model_artifacts_model_version_id ON model_artifacts (model_version_id);
CREATE INDEX ix_usage_records_user_id ON usage_records (user_id);
CREATE INDEX ix_annotation_metadata_key_num ON annotation_metadata ("key", value_num);
CREATE INDEX ix_annotation_metadata_key_text ON annotation_metadata ("key", value_text);
CREATE INDEX ix_annotation_relations_from_annotation_id ON annotation_relations (from_annotation_id);
CREATE INDEX ix_annotation_relations_to_annotation_id ON annotation_relations (to_annotation_id);
CREATE INDEX ix_annotation_tags_tag_annotation ON annotation_tags (tag, annotation_id);
CREATE INDEX ix_evaluations_model_version_id ON evaluations (model_version_id);
CREATE INDEX ix_track_members_annotation_id ON track_members (annotation_id);
CREATE TRIGGER trg_dataset_versions_frozen_update BEFORE UPDATE ON dataset_versions WHEN OLD.is_frozen BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_versions_frozen_delete BEFORE DELETE ON dataset_versions WHEN OLD.is_frozen BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_splits_frozen_insert BEFORE INSERT ON dataset_splits WHEN (SELECT is_frozen FROM dataset_versions WHERE id = NEW.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_splits_frozen_update BEFORE UPDATE ON dataset_splits WHEN (SELECT is_frozen FROM dataset_versions WHERE id = OLD.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_splits_frozen_delete BEFORE DELETE ON dataset_splits WHEN (SELECT is_frozen FROM dataset_versions WHERE id = OLD.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_version_assets_frozen_insert BEFORE INSERT ON dataset_version_assets WHEN (SELECT is_frozen FROM dataset_versions WHERE id = NEW.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_version_assets_frozen_update BEFORE UPDATE ON dataset_version_assets WHEN (SELECT is_frozen FROM dataset_versions WHERE id = OLD.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_version_assets_frozen_delete BEFORE DELETE ON dataset_version_assets WHEN (SELECT is_frozen FROM dataset_versions WHERE id = OLD.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_version_annotations_frozen_insert BEFORE INSERT ON dataset_version_annotations WHEN (SELECT is_frozen FROM dataset_versions WHERE id = NEW.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_version_annotations_frozen_update BEFORE UPDATE ON dataset_version_annotations WHEN (SELECT is_frozen FROM dataset_versions WHERE id = OLD.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
CREATE TRIGGER trg_dataset_version_annotations_frozen_delete BEFORE DELETE ON dataset_version_annotations WHEN (SELECT is_frozen FROM dataset_versions WHERE id = OLD.dataset_version_id) BEGIN SELECT RAISE(ABORT, 'dataset version is frozen: its definition, members and annotations cannot change'); END;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('change_events',5);
COMMIT;
