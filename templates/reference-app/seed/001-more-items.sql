INSERT INTO items (id, name) VALUES (4, 'Seeded by SQL: Margaret'), (5, 'Seeded by SQL: Barbara');
